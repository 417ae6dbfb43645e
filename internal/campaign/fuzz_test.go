package campaign

import (
	"errors"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/identity"
)

// FuzzParseWaves: any text is refused with ErrInvalid or gives steps
// that resolve, for any target size, to waves that cover it exactly,
// each adding devices, and whose text parses back to the same steps.
func FuzzParseWaves(f *testing.F) {
	for _, s := range []string{"100%", "10,25%,100%", "1,2,3", "5%,10,50%,1000", "0", "10,,", "99999999", "1%,100%", "50,25%,100%"} {
		f.Add(s, 100)
	}
	f.Fuzz(func(t *testing.T, spec string, n int) {
		steps, err := ParseWaves(spec)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseWaves(%q): %v is not ErrInvalid", spec, err)
			}
			return
		}
		again, err := ParseWaves(waveSpec(steps))
		if err != nil || waveSpec(again) != waveSpec(steps) {
			t.Fatalf("ParseWaves(%q) does not round trip: %v", spec, err)
		}
		n = 1 + (n%MaxDevices+MaxDevices)%MaxDevices
		sizes, err := Resolve(steps, n)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Resolve(%q, %d): %v", spec, n, err)
			}
			return
		}
		sum := 0
		for _, s := range sizes {
			if s < 1 {
				t.Fatalf("Resolve(%q, %d) = %v: an empty wave", spec, n, sizes)
			}
			sum += s
		}
		if sum != n || len(sizes) > MaxWaves {
			t.Fatalf("Resolve(%q, %d) = %v", spec, n, sizes)
		}
	})
}

// FuzzParseDeviceList: a device list is refused with ErrInvalid or
// gives distinct identities, each written in the input.
func FuzzParseDeviceList(f *testing.F) {
	a := identity.FromSPKI([]byte("a")).String()
	for _, s := range []string{a, "# c\n" + a + "\n", a + "\n" + a, "", "\n\n", a[:10], " " + a + "\r"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ids, err := ParseDeviceList(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("%v is not ErrInvalid", err)
			}
			return
		}
		seen := map[identity.ID]bool{}
		for _, id := range ids {
			if seen[id] {
				t.Fatalf("%s twice", id)
			}
			seen[id] = true
		}
		if err := (Target{Product: "p", Devices: ids}).Check(); err != nil {
			t.Fatalf("a parsed list fails the target's check: %v", err)
		}
	})
}
