package workload

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// RSS is a peak resident-set measurement.
type RSS struct {
	// PeakBytes is the peak resident set in bytes (0 if unknown).
	PeakBytes uint64
	// Scope is "config" if the peak was reset by ResetPeakRSS before the
	// measured configuration, "process" if it covers the process's life, or
	// "" if unknown.
	Scope string
}

// ResetPeakRSS returns freed memory to the operating system and asks
// Linux to reset the process's peak RSS (VmHWM) to its current RSS, by
// writing "5" to /proc/self/clear_refs. It reports whether the reset
// happened; elsewhere (or without permission) the peak stays
// process-wide and PeakRSS says so.
func ResetPeakRSS() bool {
	runtime.GC()
	debug.FreeOSMemory()
	f, err := os.OpenFile("/proc/self/clear_refs", os.O_WRONLY, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	_, err = f.WriteString("5")
	return err == nil
}

// PeakRSS returns the process's peak RSS. reset says whether ResetPeakRSS
// succeeded before the configuration being measured. It reads VmHWM from
// /proc/self/status; if that is not available it returns 0 and an error.
func PeakRSS(reset bool) (RSS, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return RSS{}, fmt.Errorf("workload: peak rss: %w", err)
	}
	v, err := parseVmHWM(b)
	if err != nil {
		return RSS{}, err
	}
	scope := "process"
	if reset {
		scope = "config"
	}
	return RSS{PeakBytes: v, Scope: scope}, nil
}

// parseVmHWM extracts VmHWM (in kB) from the text of /proc/self/status and
// returns it in bytes.
func parseVmHWM(status []byte) (uint64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "VmHWM:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("workload: peak rss: malformed line %q", line)
		}
		kb, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil || kb > 1<<44 {
			return 0, fmt.Errorf("workload: peak rss: malformed line %q", line)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("workload: peak rss: no VmHWM line in /proc/self/status")
}
