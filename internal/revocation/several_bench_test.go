package revocation

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// BenchmarkRefreshSeveralCAs100k is each CA's CRL when the registry
// lists 100,000 revoked certificates of two CAs together (50,000 of an
// ECDSA P-256 CA, 50,000 of an ML-DSA-65 one): the publisher of each CA
// tells its own apart. "cold" is a publisher's first Refresh, which looks
// every listed serial up once (GetCertificate and a parse of its DER);
// "warm" is every later one, answered from what it remembers. The
// registry here is in memory, so the figures are the platform's own work,
// the store's queries aside (docs/performance.md, "CRLs with several
// CAs").
func BenchmarkRefreshSeveralCAs100k(b *testing.B) {
	const n = 100_000
	s := newSeveralCAs(b)
	src, certs := &memSource{}, &certSource{certs: map[[16]byte]store.Certificate{}}
	for i := range n {
		var serial [16]byte
		serial[0] = 0x40
		binary.BigEndian.PutUint64(serial[8:], uint64(i+1))
		// Every other revoked certificate is the ML-DSA CA's; each is
		// recorded with a real certificate of its CA (the same DER per CA:
		// only its issuer and key identifier are read).
		iss := s.ec
		if i%2 == 1 {
			iss = s.pq
		}
		c := record(iss)
		c.Serial, c.RevokedAt, c.RevocationReason = serial, testNow.Add(-time.Hour), pki.ReasonKeyCompromise
		certs.certs[serial] = c
		src.list = append(src.list, store.RevokedCertificate{Serial: serial, RevokedAt: c.RevokedAt, Reason: c.RevocationReason,
			NotAfter: testNow.AddDate(100, 0, 0)})
	}
	for _, ca := range []*pki.CA{s.ecCA, s.mq} {
		name := string(ca.Suite())
		b.Run(name+"/cold", func(b *testing.B) {
			for b.Loop() {
				pub, err := New(Config{CA: ca, Source: src, Certificates: certs, Now: func() time.Time { return testNow }})
				if err != nil {
					b.Fatal(err)
				}
				if crl, err := pub.Refresh(context.Background()); err != nil || crl.Entries != n/2 {
					b.Fatalf("Refresh: %v", err)
				}
			}
		})
		b.Run(name+"/warm", func(b *testing.B) {
			c := &clock{now: testNow}
			pub, err := New(Config{CA: ca, Source: src, Certificates: certs, Now: c.Now})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := pub.Refresh(context.Background()); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				// Half-life passed: every Refresh signs a new CRL.
				c.Set(c.Now().Add(DefaultValidity))
				if crl, err := pub.Refresh(context.Background()); err != nil || crl.Entries != n/2 {
					b.Fatalf("Refresh: %v", err)
				}
			}
		})
	}
}
