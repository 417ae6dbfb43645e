package revocation

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// BenchmarkRefresh100k regenerates a CRL of 100,000 revoked certificates
// read in pages from an in-memory source: paging, digest, encoding and
// signing, the store's own query time aside.
func BenchmarkRefresh100k(b *testing.B) {
	src := &memSource{}
	for i := range 100_000 {
		var s [16]byte
		s[0] = 0x40
		binary.BigEndian.PutUint64(s[8:], uint64(i+1))
		src.list = append(src.list, store.RevokedCertificate{Serial: s, RevokedAt: testNow.Add(-time.Hour), Reason: pki.ReasonKeyCompromise, NotAfter: testNow.AddDate(100, 0, 0)})
	}
	for _, suite := range []sigalg.ID{sigalg.ECDSAP256, sigalg.MLDSA65} {
		b.Run(string(suite), func(b *testing.B) {
			c := &clock{now: testNow}
			pub, err := New(Config{CA: newCA(b, suite, c.Now), Source: src, Now: c.Now})
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				// Half-life passed: every Refresh signs a new CRL.
				c.Set(c.Now().Add(DefaultValidity))
				crl, err := pub.Refresh(context.Background())
				if err != nil || crl.Entries != 100_000 {
					b.Fatalf("Refresh: %v", err)
				}
			}
		})
	}
}
