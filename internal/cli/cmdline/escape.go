package cmdline

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/hallmark-iot/hallmark/internal/audit"
)

// Safe is what every command prints of text it did not write itself (a
// server's answers and problems, error messages that quote them): control
// characters (C0, DEL, C1), line and paragraph separators, bidirectional
// overrides and other invisible format characters, and invalid UTF-8 are
// escaped in Go's notation (\x1b, \n, \u202e), so a hostile server or a
// forged audit entry cannot add a line, move the cursor, retitle the
// terminal or reorder what is shown.
func Safe(s string) string { return audit.Escape(s) }

// SafeJSON makes encoded JSON as safe to print: encoding/json already
// escapes C0 controls and U+2028/U+2029, but not DEL, C1 controls or
// format characters, which it passes raw inside strings. Each becomes a
// \u escape, so the document decodes to the same values.
func SafeJSON(data []byte) []byte {
	if !strings.ContainsFunc(string(data), needsJSONEscape) {
		return data
	}
	var b strings.Builder
	for _, r := range string(data) {
		switch {
		case !needsJSONEscape(r):
			b.WriteRune(r)
		case r > 0xffff:
			hi, lo := utf16.EncodeRune(r)
			fmt.Fprintf(&b, `\u%04x\u%04x`, hi, lo)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return []byte(b.String())
}

// needsJSONEscape reports a character that is not printable beyond what
// encoding/json escapes itself. The JSON structure is ASCII, so anything
// beyond it sits inside a string, where a \u escape means the same.
func needsJSONEscape(r rune) bool {
	if r < utf8.RuneSelf {
		return r == 0x7f
	}
	return !unicode.IsPrint(r)
}
