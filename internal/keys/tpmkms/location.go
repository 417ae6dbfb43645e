package tpmkms

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/hallmark-iot/hallmark/internal/tpm"
)

// ErrLocation reports a tpm: URI location that does not parse.
var ErrLocation = errors.New("invalid tpm key store location")

// Location is what a "tpm:" URI names: the TPM (an address as
// internal/tpm reads it, the same text as the device class's --tpm) and
// the directory that holds the keys' blobs.
//
// Its text form, after "tpm:", is ADDRESS?dir=DIR:
//
//	/dev/tpmrm0?dir=/var/lib/hallmark/tpm-keys
//	tcp://127.0.0.1:2321?dir=/var/lib/hallmark/tpm-keys
//	unix:///run/swtpm/sock?dir=/var/lib/hallmark/tpm-keys
//
// The address ends at the first '?', so it cannot contain one (no TPM
// address needs it). DIR is an absolute, clean path; a byte that a URI
// cannot carry as is ('%', '&', '#', '?', a space, control characters) is
// percent-encoded, and String encodes exactly those.
type Location struct {
	Address tpm.Address
	Dir     string
}

// ParseLocation reads a location strictly: one address, one dir
// parameter, nothing else, no relative or unclean directory, so that a
// typo is an error rather than a store somewhere unexpected.
func ParseLocation(s string) (Location, error) {
	if len(s) > 2*tpm.MaxAddress {
		return Location{}, fmt.Errorf("%w: longer than %d bytes", ErrLocation, 2*tpm.MaxAddress)
	}
	addrText, query, ok := strings.Cut(s, "?")
	if !ok {
		return Location{}, fmt.Errorf("%w: %q has no ?dir=: want ADDRESS?dir=/ABSOLUTE/DIR, e.g. tpm:/dev/tpmrm0?dir=/var/lib/hallmark/tpm-keys", ErrLocation, s)
	}
	addr, err := tpm.ParseAddress(addrText)
	if err != nil {
		return Location{}, fmt.Errorf("%w: %w", ErrLocation, err)
	}
	key, value, ok := strings.Cut(query, "=")
	if !ok || key != "dir" {
		return Location{}, fmt.Errorf("%w: parameters %q: want exactly dir=/ABSOLUTE/DIR", ErrLocation, query)
	}
	if strings.ContainsAny(value, "&#?= ") {
		return Location{}, fmt.Errorf("%w: dir %q: one parameter only; percent-encode '&', '#', '?', '=' and spaces in a path", ErrLocation, value)
	}
	dir, err := url.PathUnescape(value)
	if err != nil {
		return Location{}, fmt.Errorf("%w: dir %q: %v", ErrLocation, value, err)
	}
	if dir == "" || !filepath.IsAbs(dir) || filepath.Clean(dir) != dir || dir == "/" {
		return Location{}, fmt.Errorf("%w: dir %q: want an absolute, clean path to a directory of its own (not /)", ErrLocation, dir)
	}
	if strings.ContainsFunc(dir, isControl) {
		return Location{}, fmt.Errorf("%w: dir %q: control character", ErrLocation, dir)
	}
	if escapeDir(dir) != value {
		// One spelling per directory, so that two URIs of one store
		// compare equal and the fuzzer's round trip holds.
		return Location{}, fmt.Errorf("%w: dir %q: write it as %q", ErrLocation, value, escapeDir(dir))
	}
	return Location{Address: addr, Dir: dir}, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// escapeDir percent-encodes what ParseLocation does not take literally.
func escapeDir(dir string) string {
	var b strings.Builder
	for i := 0; i < len(dir); i++ {
		c := dir[i]
		if c == '%' || c == '&' || c == '#' || c == '?' || c == '=' || c == ' ' || c < 0x20 || c == 0x7f {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// String returns the text ParseLocation reads (without "tpm:").
func (l Location) String() string {
	return l.Address.String() + "?dir=" + escapeDir(l.Dir)
}
