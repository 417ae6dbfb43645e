package storetest

import (
	"errors"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// testGetDeviceOfSuite: a device is found under its own suite only; under
// another suite it is not found, exactly like an unknown identity.
func testGetDeviceOfSuite(t *testing.T, f *fixture) {
	devices := makeDevices("of-suite", len(classes))
	b := f.batch("of-suite", "m-of-suite")
	f.mustImport(t, b, devices)
	var unknown identity.ID
	unknown[0] = 0xee
	for _, d := range devices {
		got, err := f.s.GetDeviceOfSuite(f.ctx, d.Identity, d.Algorithm)
		must(t, err)
		equal(t, "device under its own suite", got, imported(d, b))
		for _, other := range []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519, sigalg.MLDSA44, sigalg.MLDSA65, sigalg.MLDSA87, "rsa"} {
			if other == d.Algorithm {
				continue
			}
			if got, err := f.s.GetDeviceOfSuite(f.ctx, d.Identity, other); !errors.Is(err, store.ErrNotFound) || got.Identity != (identity.ID{}) {
				t.Fatalf("%s device under %s: %+v, %v; want ErrNotFound", d.Algorithm, other, got, err)
			}
		}
		if _, err := f.s.GetDeviceOfSuite(f.ctx, unknown, d.Algorithm); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown identity under %s: %v", d.Algorithm, err)
		}
	}
}
