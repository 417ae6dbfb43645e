package cmdline

import (
	"errors"
	"fmt"
	"strings"
)

// Exit statuses follow the usual Unix split between a failed operation and
// a command line that could not be understood.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// usageError marks errors caused by how the command was invoked, so Main
// can exit with status 2 as Go and Unix tools do.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// Usage marks err as a usage error: the command line, not the operation,
// was wrong.
func Usage(err error) error { return usageError{err} }

// Usagef formats a usage error.
func Usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// IsUsage reports whether err, or an error it wraps, is a usage error.
func IsUsage(err error) bool {
	var ue usageError
	return errors.As(err, &ue)
}

// OneLine keeps an error on one line: a multi-line error is hard to read
// in logs and scripts.
func OneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
