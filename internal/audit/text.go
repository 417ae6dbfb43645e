// Package audit owns how events reach the append-only audit log: Build,
// the one builder every event goes through (actor and subject checked
// against their identifier formats, text escaped and bounded); the
// Recorder, which writes an event on its own and logs one line shape when
// it cannot; the escaping that keeps text from outside (paths, names,
// addresses) from forging lines or steering a terminal; and the
// Aggregator, which turns a flood of refused anonymous attempts into
// Prometheus counters and a bounded number of summary events per
// interval instead of one permanent row each.
package audit

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxField bounds a text field of an event, in characters (runes), after
// escaping.
const MaxField = 512

// Escape returns s with every character that is not printable escaped in
// Go's notation: C0 controls, DEL and C1 controls (\x1b, \u009b), line
// and paragraph separators, bidirectional overrides and other format
// characters (\u202e), and each byte of invalid UTF-8 (\xff). Printable
// text, spaces included, passes unchanged, so a name that was valid stays
// as it was; nothing that comes out can start a new line, move a cursor
// or reorder what a terminal shows.
func Escape(s string) string {
	return escape(s, -1)
}

// Text is Escape bounded to max characters (max ≥ 1): a longer result is
// cut between escapes, never inside one, and ends in "…".
func Text(s string, max int) string {
	return escape(s, max)
}

// escape escapes s, keeping at most max characters when max ≥ 0.
func escape(s string, max int) string {
	if isPrintable(s) && (max < 0 || utf8.RuneCountInString(s) <= max) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	n := 0 // characters written
	for i := 0; i < len(s); {
		piece, size := escapeAt(s, i)
		i += size
		cost := utf8.RuneCountInString(piece)
		if max >= 0 && (n+cost > max || (n+cost == max && i < len(s))) {
			b.WriteString("…")
			break
		}
		b.WriteString(piece)
		n += cost
	}
	return b.String()
}

// escapeAt returns the character at s[i], escaped if it is not printable,
// and its size in s.
func escapeAt(s string, i int) (string, int) {
	r, size := utf8.DecodeRuneInString(s[i:])
	switch {
	case r == utf8.RuneError && size == 1:
		return fmt.Sprintf(`\x%02x`, s[i]), 1
	case r == ' ' || unicode.IsPrint(r):
		return s[i : i+size], size
	case r == '\n':
		return `\n`, size
	case r == '\r':
		return `\r`, size
	case r == '\t':
		return `\t`, size
	case r < 0x80:
		return fmt.Sprintf(`\x%02x`, r), size
	case r <= 0xffff:
		return fmt.Sprintf(`\u%04x`, r), size
	}
	return fmt.Sprintf(`\U%08x`, r), size
}

func isPrintable(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || (r != ' ' && !unicode.IsPrint(r)) {
			return false
		}
	}
	return true
}

// InvalidSource stands for a client address that does not parse.
const InvalidSource = "invalid"

// Source returns the canonical form of a client address (an IP without
// port or zone, an IPv4-mapped IPv6 address as IPv4), or InvalidSource:
// what the log records as remote_addr is never free text.
func Source(addr string) string {
	if addr == "" {
		return ""
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		if ap, perr := netip.ParseAddrPort(addr); perr == nil {
			ip, err = ap.Addr(), nil
		}
	}
	if err != nil {
		return InvalidSource
	}
	return ip.Unmap().WithZone("").String()
}
