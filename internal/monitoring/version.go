package monitoring

import (
	"errors"
	"fmt"
	"strings"
)

// ErrVersionNotComparable refuses a firmware version that Compare cannot
// order: the check of a product's minimum reports such a version rather
// than guess where it falls.
var ErrVersionNotComparable = errors.New("firmware version not comparable")

// Version is a firmware version in the form Compare orders: dotted
// numbers (1 to maxVersionParts of them), then optionally a pre-release
// ("-rc.1") and build metadata ("+build.7", ignored), as in Semantic
// Versioning 2.0.0 but with any number of numeric parts, so that 1.4,
// 1.4.0 and 1.4.0.0 are the same version.
type Version struct {
	core []string // numeric parts, leading zeros removed; trailing zeros dropped
	pre  []string // pre-release identifiers; nil for a release
}

const maxVersionParts = 8

// ParseVersion reads v, or says why it is not comparable.
func ParseVersion(v string) (Version, error) {
	if len(v) == 0 || len(v) > MaxFirmwareVersion {
		return Version{}, fmt.Errorf("%w: %d characters", ErrVersionNotComparable, len(v))
	}
	rest, _, _ := strings.Cut(v, "+") // build metadata does not order
	core, pre, hasPre := strings.Cut(rest, "-")
	var out Version
	parts := strings.Split(core, ".")
	if len(parts) > maxVersionParts {
		return Version{}, fmt.Errorf("%w: %q has more than %d numeric parts", ErrVersionNotComparable, v, maxVersionParts)
	}
	for _, p := range parts {
		if !numeric(p) {
			return Version{}, fmt.Errorf("%w: %q: %q is not a number", ErrVersionNotComparable, v, p)
		}
		out.core = append(out.core, trimZeros(p))
	}
	for len(out.core) > 1 && out.core[len(out.core)-1] == "0" {
		out.core = out.core[:len(out.core)-1]
	}
	if hasPre {
		for _, id := range strings.Split(pre, ".") {
			if id == "" || strings.Trim(id, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-") != "" {
				return Version{}, fmt.Errorf("%w: %q: pre-release %q is not dot-separated [0-9A-Za-z-]", ErrVersionNotComparable, v, pre)
			}
			if numeric(id) {
				id = trimZeros(id)
			}
			out.pre = append(out.pre, id)
		}
	}
	return out, nil
}

// CheckVersion reports whether v is comparable (a product's minimum must be).
func CheckVersion(v string) error {
	_, err := ParseVersion(v)
	return err
}

func numeric(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func trimZeros(s string) string {
	t := strings.TrimLeft(s, "0")
	if t == "" {
		return "0"
	}
	return t
}

// cmpNumber orders two decimal numbers without leading zeros, of any
// length (no overflow to guard against).
func cmpNumber(a, b string) int {
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

// Compare orders a and b: -1, 0 or +1. Numeric parts compare as numbers,
// a missing part as zero; a pre-release is before its release, and two
// pre-releases compare identifier by identifier (numbers as numbers and
// before words, words bytewise, a shorter list first when it is a prefix).
func (a Version) Compare(b Version) int {
	for i := range max(len(a.core), len(b.core)) {
		x, y := "0", "0"
		if i < len(a.core) {
			x = a.core[i]
		}
		if i < len(b.core) {
			y = b.core[i]
		}
		if c := cmpNumber(x, y); c != 0 {
			return c
		}
	}
	switch {
	case a.pre == nil && b.pre == nil:
		return 0
	case a.pre == nil:
		return 1
	case b.pre == nil:
		return -1
	}
	for i := range min(len(a.pre), len(b.pre)) {
		x, y := a.pre[i], b.pre[i]
		nx, ny := numeric(x), numeric(y)
		var c int
		switch {
		case nx && ny:
			c = cmpNumber(x, y)
		case nx:
			c = -1
		case ny:
			c = 1
		default:
			c = strings.Compare(x, y)
		}
		if c != 0 {
			return c
		}
	}
	switch {
	case len(a.pre) < len(b.pre):
		return -1
	case len(a.pre) > len(b.pre):
		return 1
	}
	return 0
}

// CompareVersions parses and orders a and b; an error if either is not
// comparable.
func CompareVersions(a, b string) (int, error) {
	va, err := ParseVersion(a)
	if err != nil {
		return 0, err
	}
	vb, err := ParseVersion(b)
	if err != nil {
		return 0, err
	}
	return va.Compare(vb), nil
}
