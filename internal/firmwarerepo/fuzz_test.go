package firmwarerepo

import (
	"errors"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// FuzzCheck: whatever a vendor uploads, Check never panics, refuses with
// one of the repository's codes, and accepts only what the device-side
// check (without decryption) accepts too.
func FuzzCheck(f *testing.F) {
	ec, pq := testKey(f, sigalg.ECDSAP256, 1), testKey(f, sigalg.Ed25519, 2)
	class, err := sealing.GenerateKey(sealing.X25519)
	if err != nil {
		f.Fatal(err)
	}
	policy := store.FirmwarePolicy{Roots: [][32]byte{rootOf(f, ec), rootOf(f, pq)}, ClassKey: class.Public().Fingerprint()}
	good := buildImage(f, app, class.Public(), ec, pq)
	f.Add(good)
	f.Add(buildImage(f, app, nil, ec, pq))
	f.Add(buildImage(f, app, nil, ec))
	f.Add(buildImage(f, firmware.Metadata{Type: firmware.TypeIEF}, nil, ec, pq))
	f.Add(good[:len(good)/2])
	f.Add([]byte("HMFW"))
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := Check(data, policy)
		if err != nil {
			var ae *admin.Error
			if !errors.As(err, &ae) || !strings.HasPrefix(ae.Code, "firmware-") {
				t.Fatalf("refusal %v is not a firmware problem", err)
			}
			return
		}
		if _, err := firmware.VerifyEnvelope(img, firmware.Policy{RootKeyHashes: policy.Roots}); err != nil {
			t.Fatalf("accepted an image the device check refuses: %v", err)
		}
		if img.Header().Type != firmware.TypeApplication {
			t.Fatal("accepted a non-application image")
		}
	})
}
