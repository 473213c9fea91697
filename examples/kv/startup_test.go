package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildKV builds the kv command into t.TempDir() and returns its path.
func buildKV(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kv")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runKV runs the kv binary with args and returns its exit code and stderr.
func runKV(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, stderr.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), stderr.String()
	default:
		t.Fatalf("run kv %q: %v", args, err)
		return 0, ""
	}
}

// A startup error is printed as one line naming the real cause, without a
// panic or stack trace, and the process exits with status 1. (startNode's
// cleanup once dereferenced the nil node it had just returned, so every
// startup error was a nil-pointer panic.)
func TestStartupErrorsAreReportedNotPanicked(t *testing.T) {
	bin := buildKV(t)
	file := filepath.Join(t.TempDir(), "not-a-directory")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		want string // in stderr
		code int    // exit status
	}{
		{"unknown flag", []string{"-no-such-flag"}, "flag provided but not defined", 2},
		{"bad duration", []string{"-join-timeout", "0s"}, "-join-timeout must be positive", 2},
		{"dir is a regular file", []string{"-id", "n1", "-addr", "127.0.0.1:0", "-http", "127.0.0.1:0", "-dir", file,
			"-peers", "n1=127.0.0.1:7001/127.0.0.1:8001"}, "not a directory", 1},
		{"dir below a regular file", []string{"-id", "n1", "-addr", "127.0.0.1:0", "-http", "127.0.0.1:0", "-dir", filepath.Join(file, "sub"),
			"-peers", "n1=127.0.0.1:7001/127.0.0.1:8001"}, "not a directory", 1},
		// Refused by the transport before it binds anything.
		{"plaintext off loopback", []string{"-id", "n1", "-addr", "0.0.0.0:0", "-http", "127.0.0.1:0", "-dir", t.TempDir(),
			"-peers", "n1=127.0.0.1:7001/127.0.0.1:8001"}, "give -tls-cert, -tls-key and -tls-ca", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, stderr := runKV(t, bin, c.args...)
			if code != c.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, c.code, stderr)
			}
			for _, bad := range []string{"panic", "goroutine ", "nil pointer"} {
				if strings.Contains(stderr, bad) {
					t.Fatalf("stderr has %q:\n%s", bad, stderr)
				}
			}
			if !strings.HasPrefix(stderr, "kv: ") || !strings.Contains(stderr, c.want) {
				t.Fatalf("stderr does not start with \"kv: \" and name %q:\n%s", c.want, stderr)
			}
		})
	}
}
