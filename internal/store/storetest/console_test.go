package storetest

import (
	"errors"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/store"
)

// IdentityPrefixRange: the first and last identity of a prefix, odd
// lengths fixing the high half of the last byte.
func TestIdentityPrefixRange(t *testing.T) {
	for _, c := range []struct{ prefix, lo, hi string }{
		{"a", "a0", "af"},
		{"AB", "ab", "ab"},
		{"abc", "abc0", "abcf"},
		{"0", "00", "0f"},
		{"f", "f0", "ff"},
	} {
		lo, hi, err := store.IdentityPrefixRange(c.prefix)
		if err != nil {
			t.Fatalf("IdentityPrefixRange(%q): %v", c.prefix, err)
		}
		wantLo := c.lo + strings.Repeat("0", 64-len(c.lo))
		wantHi := c.hi + strings.Repeat("f", 64-len(c.hi))
		if lo.String() != wantLo || hi.String() != wantHi {
			t.Errorf("IdentityPrefixRange(%q) = %s, %s; want %s, %s", c.prefix, lo, hi, wantLo, wantHi)
		}
	}
	full := strings.Repeat("5a", 32)
	lo, hi, err := store.IdentityPrefixRange(full)
	if err != nil || lo.String() != full || hi != lo {
		t.Errorf("IdentityPrefixRange(64 digits) = %s, %s, %v; want the identity twice", lo, hi, err)
	}
	for _, bad := range []string{"", "g", "0x1", full + "5"} {
		if _, _, err := store.IdentityPrefixRange(bad); !errors.Is(err, store.ErrBadFilter) {
			t.Errorf("IdentityPrefixRange(%q) = %v, want ErrBadFilter", bad, err)
		}
	}
}
