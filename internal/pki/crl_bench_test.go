package pki

import (
	"context"
	"encoding/binary"
	"math/big"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// BenchmarkCRL100k signs a CRL of 100,000 revoked certificates, the
// figure docs/pki.md quotes: encoding dominates, the one signature is
// noise, so the suites differ little.
func BenchmarkCRL100k(b *testing.B) {
	const n = 100_000
	entries := make([]CRLEntry, n)
	for i := range entries {
		var s [SerialSize]byte
		s[0] = 0x40
		binary.BigEndian.PutUint64(s[8:], uint64(i+1)*0x9e3779b97f4a7c15)
		entries[i] = CRLEntry{Serial: s, RevokedAt: testNow.Add(-time.Duration(i) * time.Second), Reason: []int{0, 1, 4, 5}[i%4]}
	}
	for _, suite := range []sigalg.ID{sigalg.ECDSAP256, sigalg.MLDSA65} {
		tc := newTestCA(b, suite)
		req := CRLRequest{Number: big.NewInt(1), ThisUpdate: testNow, NextUpdate: testNow.Add(24 * time.Hour), Entries: entries}
		b.Run("create/"+string(suite), func(b *testing.B) {
			var size int
			for b.Loop() {
				der, err := tc.CreateCRL(context.Background(), req)
				if err != nil {
					b.Fatal(err)
				}
				size = len(der)
			}
			b.ReportMetric(float64(size)/1e6, "MB")
		})
		der, err := tc.CreateCRL(context.Background(), req)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("verify/"+string(suite), func(b *testing.B) {
			for b.Loop() {
				if _, err := VerifyCRL(der, tc.IssuingCertificate()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
