package pki

import (
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// TestOpenSSLChecksCRLs: OpenSSL, an implementation independent of this
// package, checks revocation against our CRLs for ECDSA and Ed25519 CAs
// whose device certificates carry a CRL Distribution Point: the revoked
// certificate is refused, the other one verifies, and `openssl crl` shows
// the number and the reason. (OpenSSL 3.0 has no ML-DSA: ML-DSA CRLs are
// checked by VerifyCRL in crl_test.go.)
func TestOpenSSLChecksCRLs(t *testing.T) {
	requireOpenSSL(t)
	for _, suite := range []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519} {
		t.Run(string(suite), func(t *testing.T) {
			tc := newTestCAWith(t, Config{Suite: suite, RevocationBaseURL: testRevocationBase})
			revoked := issueDevice(t, tc.CA, deviceKey(t, sigalg.ECDSAP256, "revoked").Public(), "revoked")
			good := issueDevice(t, tc.CA, deviceKey(t, sigalg.Ed25519, "good").Public(), "good")
			crl := createCRL(t, tc.CA, CRLRequest{Number: big.NewInt(1_700_000_000_123), ThisUpdate: testNow,
				NextUpdate: testNow.Add(24 * time.Hour),
				Entries:    []CRLEntry{{Serial: revoked.Serial, RevokedAt: testNow.Add(-time.Minute), Reason: ReasonKeyCompromise}}})
			chain := append(pemBytes(tc.Chain()[0]), pemBytes(tc.Chain()[1])...)
			dir := writeFiles(t, map[string][]byte{
				"chain.pem": chain, "revoked.pem": pemBytes(revoked.DER), "good.pem": pemBytes(good.DER),
				"crl.der": crl, "crl.pem": pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crl}),
			})
			// Within the CRL's validity: after thisUpdate, before nextUpdate.
			at := fmt.Sprint(testNow.Add(time.Hour).Unix())
			verify := func(file string) (string, error) {
				return runOpenSSL(t, dir, "verify", "-x509_strict", "-attime", at, "-crl_check",
					"-CRLfile", "crl.pem", "-CAfile", "chain.pem", file)
			}
			if out, err := verify("revoked.pem"); err == nil || !strings.Contains(out, "certificate revoked") {
				t.Errorf("openssl verify of the revoked certificate: %v\n%s", err, out)
			}
			if out, err := verify("good.pem"); err != nil || !strings.Contains(out, "good.pem: OK") {
				t.Errorf("openssl verify of the good certificate: %v\n%s", err, out)
			}
			out, err := runOpenSSL(t, dir, "crl", "-inform", "DER", "-in", "crl.der", "-text", "-noout")
			if err != nil {
				t.Fatalf("openssl crl: %v\n%s", err, out)
			}
			for _, want := range []string{"Version 2", "X509v3 CRL Number", "1700000000123", "Key Compromise",
				"Serial Number: " + strings.ToUpper(fmt.Sprintf("%x", revoked.Serial)), "X509v3 Authority Key Identifier"} {
				if !strings.Contains(out, want) {
					t.Errorf("openssl crl -text lacks %q:\n%s", want, out)
				}
			}
			// The CRL's own signature, checked by OpenSSL.
			if out, err := runOpenSSL(t, dir, "crl", "-in", "crl.pem", "-CAfile", "chain.pem", "-noout"); err != nil || !strings.Contains(out, "verify OK") {
				t.Errorf("openssl crl -CAfile: %v\n%s", err, out)
			}
		})
	}
}
