package revocation

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// BenchmarkOCSPHandler measures the responder's HTTP handler, the figures
// in docs/pki.md: "nonce" requests a fresh nonce each time, so every
// response is looked up and signed (the signature is also checked, see
// pki.OCSPSigner.Sign); "cached" repeats a request without nonce, served
// from the cache. The registry is in memory: this is the responder's
// cost, not the database's. Run with -cpu to see it scale over cores.
func BenchmarkOCSPHandler(b *testing.B) {
	for _, suite := range []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519, sigalg.MLDSA65} {
		f := newOCSPFixture(b, suite, nil)
		b.Run(string(suite)+"/nonce", func(b *testing.B) {
			benchOCSP(b, f, true)
		})
		b.Run(string(suite)+"/cached", func(b *testing.B) {
			benchOCSP(b, f, false)
		})
	}
}

func benchOCSP(b *testing.B, f *ocspFixture, withNonce bool) {
	var reqs [][]byte
	for i := range 64 {
		var nonce []byte
		if withNonce {
			nonce = binary.BigEndian.AppendUint64(nil, uint64(i))
		}
		reqs = append(reqs, f.request(b, crypto.SHA1, nonce, f.revoked))
	}
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, pki.OCSPPath, bytes.NewReader(reqs[i%len(reqs)]))
			req.Header.Set("Content-Type", ContentTypeOCSPRequest)
			w := httptest.NewRecorder()
			f.responder.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("HTTP %d", w.Code)
			}
			i++
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "responses/s")
}
