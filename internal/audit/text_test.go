package audit

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"Line 1 – Zürich":                     "Line 1 – Zürich",
		"abc\ntoken:admin device.revoke ok":   `abc\ntoken:admin device.revoke ok`,
		"\x1b[2J\x1b]0;owned\x07":             `\x1b[2J\x1b]0;owned\x07`,
		"tab\there\rcr\x7fdel":                `tab\there\rcr\x7fdel`,
		"c1 \u009b31m csi \u0085 nel":         `c1 \u009b31m csi \u0085 nel`,
		"bidi \u202eevil\u202c \u2066x\u2069": `bidi \u202eevil\u202c \u2066x\u2069`,
		"sep \u2028 \u2029 zw\u200b\ufeff":    `sep \u2028 \u2029 zw\u200b\ufeff`,
		"bad \xff\xfe utf-8":                  `bad \xff\xfe utf-8`,
		"private \U000f0000":                  `private \U000f0000`,
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestText(t *testing.T) {
	long := strings.Repeat("é", 600)
	got := Text(long, MaxField)
	if utf8.RuneCountInString(got) != MaxField || !strings.HasSuffix(got, "…") || !utf8.ValidString(got) {
		t.Fatalf("Text of 600 characters: %d characters, %q...", utf8.RuneCountInString(got), got[:10])
	}
	// Escaping counts towards the bound, and an escape is never cut.
	if got := Text(strings.Repeat("\x1b", 100), 10); got != `\x1b\x1b…` {
		t.Fatalf("Text of escapes: %q", got)
	}
	if got := Text("short", 10); got != "short" {
		t.Fatalf("Text(short) = %q", got)
	}
}

func TestSource(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":                  "192.0.2.7",
		"192.0.2.7:4431":             "192.0.2.7",
		"[2001:db8::1]:443":          "2001:db8::1",
		"::ffff:192.0.2.7":           "192.0.2.7",
		"fe80::1%eth0":               "fe80::1",
		"":                           "",
		"a":                          InvalidSource,
		"192.0.2.7\n2001:db8::1":     InvalidSource,
		"203.0.113.9 token:admin ok": InvalidSource,
	} {
		if got := Source(in); got != want {
			t.Errorf("Source(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzEscape: whatever goes in, what comes out is valid UTF-8 of printable
// characters only, and printable input passes unchanged.
func FuzzEscape(f *testing.F) {
	for _, seed := range []string{"", "plain", "a\nb", "\x1b[2J", "\u202e", "\xff", "\u0085", "é\u2028"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Text(s, MaxField)
		if !utf8.ValidString(got) || utf8.RuneCountInString(got) > MaxField {
			t.Fatalf("Text(%q) = %q", s, got)
		}
		for _, r := range got {
			if r != ' ' && !unicode.IsPrint(r) {
				t.Fatalf("Text(%q) = %q holds %U", s, got, r)
			}
		}
		if isPrintable(s) && Escape(s) != s {
			t.Fatalf("printable %q changed to %q", s, Escape(s))
		}
	})
}
