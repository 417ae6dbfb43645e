package pki

import (
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// TestRFC9881Examples reads the example certificates of RFC 9881 (self-
// signed ML-DSA-44, -65 and -87 CAs, testdata/rfc9881) and checks their
// self-signatures, so the ML-DSA encoding and verification agree with an
// independent implementation, not only with this package's own builder.
func TestRFC9881Examples(t *testing.T) {
	for _, c := range []struct {
		file  string
		suite sigalg.ID
	}{
		{"ML-DSA-44.crt", sigalg.MLDSA44},
		{"ML-DSA-65.crt", sigalg.MLDSA65},
		{"ML-DSA-87.crt", sigalg.MLDSA87},
	} {
		t.Run(c.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "rfc9881", c.file))
			if err != nil {
				t.Fatal(err)
			}
			block, _ := pem.Decode(data)
			if block == nil {
				t.Fatal("no PEM block")
			}
			cert, err := parseCert(block.Bytes)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if s, err := sigalg.SuiteOf(cert.PublicKey); err != nil || s.ID() != c.suite {
				t.Fatalf("key suite %v, %v", s, err)
			}
			if err := cert.checkSignedBy(cert.Certificate); err != nil {
				t.Fatalf("self-signature: %v", err)
			}
			// As a trust anchor it verifies itself as a chain of one
			// CA certificate, within its validity (2020–2040).
			at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
			if _, err := VerifyChain(block.Bytes, nil, [][]byte{block.Bytes}, at, 0); err != nil {
				t.Fatalf("VerifyChain: %v", err)
			}
			tampered := append([]byte(nil), block.Bytes...)
			tampered[len(tampered)-40] ^= 1
			if tc, err := parseCert(tampered); err == nil && tc.checkSignedBy(cert.Certificate) == nil {
				t.Fatal("tampered signature verifies")
			}
		})
	}
}
