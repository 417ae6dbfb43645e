//go:build cgo

package pkcs11kms_test

import (
	"context"
	"crypto"
	"path/filepath"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/keys/pkcs11kms/softhsmtest"
	_ "github.com/hallmark-iot/hallmark/internal/keys/softkms"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// BenchmarkSign compares signing through a SoftHSM2 token with the
// software store, one signer at a time and in parallel (b.RunParallel),
// each signature through sigalg.Sign as every caller makes it.
func BenchmarkSign(b *testing.B) {
	stores := []struct {
		name string
		open func(b *testing.B) keys.Manager
	}{
		{"softhsm2", func(b *testing.B) keys.Manager {
			m, err := keys.Open(context.Background(), softhsmtest.New(b).URI, keys.Options{})
			if err != nil {
				b.Fatal(err)
			}
			return m
		}},
		{"softkms", func(b *testing.B) keys.Manager {
			m, err := keys.Open(context.Background(), "soft:"+filepath.Join(b.TempDir(), "keys"),
				keys.Options{Passphrase: []byte("benchmark passphrase"), Create: true})
			if err != nil {
				b.Fatal(err)
			}
			return m
		}},
	}
	for _, id := range []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519} {
		for _, store := range stores {
			b.Run(string(id)+"/"+store.name, func(b *testing.B) {
				m := store.open(b)
				defer m.Close()
				signer := benchSigner(b, m, id)
				msg := []byte("a certificate's to-be-signed bytes, more or less")
				b.Run("serial", func(b *testing.B) {
					for b.Loop() {
						if _, err := sigalg.Sign(signer, msg); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sig/s")
				})
				b.Run("parallel", func(b *testing.B) {
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if _, err := sigalg.Sign(signer, msg); err != nil {
								b.Error(err)
								return
							}
						}
					})
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sig/s")
				})
			})
		}
	}
}

func benchSigner(b *testing.B, m keys.Manager, id sigalg.ID) crypto.Signer {
	b.Helper()
	if _, err := m.CreateKey(context.Background(), keys.CreateKeyRequest{Name: "bench", Suite: id}); err != nil {
		b.Fatal(err)
	}
	s, err := m.Signer(context.Background(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	return s
}
