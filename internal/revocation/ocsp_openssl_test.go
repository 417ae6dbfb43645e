package revocation

import (
	"crypto"
	"encoding/pem"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

func requireOpenSSL(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatalf("openssl not found (%v): install the Debian package openssl", err)
	}
}

func writePEMFiles(t *testing.T, certs map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, der := range certs {
		data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestOpenSSLQueriesOCSPResponder runs `openssl ocsp` against the
// responder over HTTP, for ECDSA and Ed25519 chains, with and without a
// nonce: the revoked device is "revoked" with its reason, the other
// "good", and OpenSSL verifies the delegated responder's signature and
// chain to the root. OpenSSL checks times against its own clock, so the
// CA and responder run on the wall clock.
func TestOpenSSLQueriesOCSPResponder(t *testing.T) {
	requireOpenSSL(t)
	for _, suite := range []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519} {
		t.Run(string(suite), func(t *testing.T) {
			f := newOCSPFixture(t, suite, time.Now)
			srv := newOCSPServer(t, f)
			dir := writePEMFiles(t, map[string][]byte{
				"root.pem": f.ca.Chain()[1], "issuing.pem": f.ca.Chain()[0],
				"good.pem": f.good.DER, "revoked.pem": f.revoked.DER,
			})
			for _, nonceFlag := range []string{"", "-no_nonce"} {
				args := []string{"ocsp", "-issuer", "issuing.pem", "-cert", "good.pem", "-cert", "revoked.pem",
					"-url", srv.URL + pki.OCSPPath, "-CAfile", "root.pem"}
				if nonceFlag != "" {
					args = append(args, nonceFlag)
				}
				cmd := exec.CommandContext(t.Context(), "openssl", args...)
				cmd.Dir = dir
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				t.Logf("openssl ocsp %s:\n%s", nonceFlag, out)
				for _, want := range []string{"Response verify OK", "good.pem: good", "revoked.pem: revoked", "Reason: keyCompromise"} {
					if !strings.Contains(string(out), want) {
						t.Errorf("openssl ocsp %s: output lacks %q:\n%s", nonceFlag, want, out)
					}
				}
				if strings.Contains(string(out), "WARNING") {
					t.Errorf("openssl ocsp %s warns:\n%s", nonceFlag, out)
				}
			}
		})
	}
}

// TestMLDSAOCSPOverHTTP: OpenSSL 3.0 has no ML-DSA, so the project's own
// verifier checks the ML-DSA responder's answers fetched over HTTP.
func TestMLDSAOCSPOverHTTP(t *testing.T) {
	for _, suite := range []sigalg.ID{sigalg.MLDSA44, sigalg.MLDSA65, sigalg.MLDSA87} {
		t.Run(string(suite), func(t *testing.T) {
			f := newOCSPFixture(t, suite, nil)
			srv := newOCSPServer(t, f)
			nonce := []byte("ml-dsa nonce")
			resp, body := ocspDo(t, http.MethodPost, srv.URL+pki.OCSPPath, ContentTypeOCSPRequest, f.request(t, crypto.SHA256, nonce, f.good, f.revoked))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("HTTP %d", resp.StatusCode)
			}
			got := f.verify(t, OCSPAnswer{DER: body}, ocspTestNow, nonce)
			if got.Responses[0].Status != pki.OCSPGood || got.Responses[1].Status != pki.OCSPRevoked || got.Responses[1].Reason != pki.ReasonKeyCompromise {
				t.Fatalf("statuses %+v", got.Responses)
			}
			if s, _ := sigalg.SuiteOf(got.Signer.PublicKey); s.ID() != suite {
				t.Errorf("signed with a %s key, want %s", s.ID(), suite)
			}
		})
	}
}
