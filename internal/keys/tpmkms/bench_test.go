package tpmkms

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/keys/softkms"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/tpm/tpmtest"
)

// BenchmarkSign compares a signature (sigalg.Sign, ECDSA P-256) by a key
// in swtpm with one by the software store. Each TPM signature is a
// connection, TPM2_CreatePrimary of the storage root key, TPM2_Load,
// TPM2_Sign and two flushes (internal/tpm keeps nothing loaded).
func BenchmarkSign(b *testing.B) {
	ctx := context.Background()
	msg := []byte("a certificate's to-be-signed bytes, about this long or longer")
	run := func(b *testing.B, m keys.Manager) {
		defer m.Close()
		if _, err := m.CreateKey(ctx, keys.CreateKeyRequest{Name: "ca", Suite: sigalg.ECDSAP256}); err != nil {
			b.Fatal(err)
		}
		signer, err := m.Signer(ctx, "ca")
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for b.Loop() {
			if _, err := sigalg.Sign(signer, msg); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sig/s")
	}
	b.Run("tpm-swtpm", func(b *testing.B) {
		sim := tpmtest.Start(b)
		s, err := Open(ctx, Location{Address: sim.Address, Dir: filepath.Join(b.TempDir(), "k")}, true)
		if err != nil {
			b.Fatal(err)
		}
		run(b, s)
	})
	b.Run("soft", func(b *testing.B) {
		s, err := softkms.Open(ctx, filepath.Join(b.TempDir(), "k"), []byte("benchmark passphrase"), softkms.InsecureKDFIterations(1000))
		if err != nil {
			b.Fatal(err)
		}
		run(b, s)
	})
}
