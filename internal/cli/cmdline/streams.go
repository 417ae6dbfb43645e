// Package cmdline owns what every hallmark command shares with the process
// and with the other commands: the standard streams, reading inputs and
// writing outputs (files or "-"), key files, exit statuses and usage
// errors, the flags several command groups take (the platform to talk to,
// the station's key store), flags bound to HALLMARK_* environment
// variables, and output that is safe to print (escaped server text,
// aligned tables, JSON). It holds no command and no domain logic; the
// command groups (internal/cli/*cmd) build on it.
package cmdline

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Streams carries the process's standard streams so that commands never
// touch os.Stdin/os.Stdout directly and tests can run them in-process.
type Streams struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// PrintJSON writes v as indented JSON, with what a terminal could take
// for a command escaped (SafeJSON).
func (s *Streams) PrintJSON(v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = s.Out.Write(append(SafeJSON(data), '\n'))
	return err
}

// Table writes rows under a header, aligned, each cell escaped (Safe): a
// cell holds text from the server and must stay one cell of one line.
func (s *Streams) Table(header string, rows [][]string) error {
	tw := NewTabWriter(s.Out)
	fmt.Fprintln(tw, header)
	for _, row := range rows {
		cells := make([]string, len(row))
		for i, c := range row {
			cells[i] = Safe(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// NewTabWriter is the one column layout of every table the commands
// print: two spaces between columns.
func NewTabWriter(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}
