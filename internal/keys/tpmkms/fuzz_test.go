package tpmkms

import (
	"errors"
	"testing"
)

// FuzzParseLocation: no panic; every error is ErrLocation; an accepted
// location prints as the very text it was read from (one spelling per
// store) and reads back as itself.
func FuzzParseLocation(f *testing.F) {
	for _, s := range []string{
		"/dev/tpmrm0?dir=/var/lib/hallmark/tpm-keys",
		"tcp://127.0.0.1:2321?dir=/k",
		"tcp://[::1]:2321?dir=/k",
		"unix:///run/swtpm/sock?dir=/srv/keys%20and%26",
		"/dev/tpmrm0?dir=/a%2fb",
		"/dev/tpmrm0?dir=/k&dir=/j",
		"/dev/tpmrm0?dir=",
		"/dev/tpmrm0",
		"?dir=/k",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		loc, err := ParseLocation(s)
		if err != nil {
			if !errors.Is(err, ErrLocation) {
				t.Fatalf("error without ErrLocation: %v", err)
			}
			return
		}
		if loc.String() != s {
			t.Fatalf("%q parses to %+v, which prints as %q", s, loc, loc.String())
		}
		again, err := ParseLocation(loc.String())
		if err != nil || again != loc {
			t.Fatalf("%q reads back as %+v, %v", loc.String(), again, err)
		}
	})
}
