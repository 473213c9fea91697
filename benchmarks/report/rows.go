package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// writeRows writes title, then header and rows as a right-aligned text
// table; what names the table in a write error.
func writeRows(w io.Writer, title, what string, header []string, rows [][]string) error {
	fmt.Fprintln(w, title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(header, "\t")+"\t")
	for _, row := range rows {
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("report: write %s: %w", what, err)
	}
	return nil
}

// markdownRows appends header and rows to b as a Markdown table preceded
// by a blank line; align is the separator row's cells ("---", "--:").
func markdownRows(b *strings.Builder, header, align []string, rows [][]string) {
	b.WriteString("\n| " + strings.Join(header, " | ") + " |\n|" + strings.Join(align, "|") + "|\n")
	for _, row := range rows {
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
}

// alignment returns n separator cells: left ones ("---") first, right
// ones ("--:") up to the last, which is left when lastLeft is set.
func alignment(n, left int, lastLeft bool) []string {
	a := make([]string, n)
	for i := range a {
		if i < left || (lastLeft && i == n-1) {
			a[i] = "---"
		} else {
			a[i] = "--:"
		}
	}
	return a
}
