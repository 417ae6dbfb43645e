package pki

import (
	"context"
	"crypto"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// TestOpenSSLVerifiesOCSPResponses has OpenSSL check responses this
// package signs, read back with -respin: the signature, the delegated
// responder's chain and purpose, and the status and reason of each
// certificate. OpenSSL checks times against its own clock, so the CA runs
// on the wall clock here. internal/revocation runs OpenSSL against the
// HTTP responder, nonce included.
func TestOpenSSLVerifiesOCSPResponses(t *testing.T) {
	requireOpenSSL(t)
	for _, suite := range []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519} {
		t.Run(string(suite), func(t *testing.T) {
			f := newWallClockOCSPFixture(t, suite)
			caSigner, err := f.OCSPSigner()
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				name   string
				signer *OCSPSigner
			}{{"delegated", f.responder}, {"issuing CA", caSigner}} {
				for _, reason := range []struct {
					code int
					name string
				}{{ReasonKeyCompromise, "keyCompromise"}, {ReasonCertificateHold, "certificateHold"}} {
					t.Run(tc.name+"/"+reason.name, func(t *testing.T) {
						checkOpenSSLRespin(t, f, tc.signer, reason.code, reason.name)
					})
				}
			}
		})
	}
}

func checkOpenSSLRespin(t *testing.T, f *ocspFixture, signer *OCSPSigner, reason int, reasonName string) {
	now := time.Now()
	der, err := signer.Sign(now, []OCSPSingleResponse{
		{CertID: f.certID(t, 0, crypto.SHA1), Status: OCSPGood, ThisUpdate: now, NextUpdate: now.Add(time.Hour)},
		{CertID: f.certID(t, 1, crypto.SHA1), Status: OCSPRevoked, RevokedAt: now.Add(-time.Minute), Reason: reason, ThisUpdate: now, NextUpdate: now.Add(time.Hour)},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := writeFiles(t, map[string][]byte{
		"resp.der": der, "root.pem": pemBytes(f.Chain()[1]), "issuing.pem": pemBytes(f.Chain()[0]),
		"good.pem": pemBytes(f.devices[0].DER), "revoked.pem": pemBytes(f.devices[1].DER),
	})
	out, err := runOpenSSL(t, dir, "ocsp", "-respin", "resp.der", "-issuer", "issuing.pem", "-CAfile", "root.pem",
		"-no_nonce", "-cert", "good.pem", "-cert", "revoked.pem")
	if err != nil {
		t.Fatalf("openssl ocsp: %v\n%s", err, out)
	}
	for _, want := range []string{"Response verify OK", "good.pem: good", "revoked.pem: revoked", "Reason: " + reasonName} {
		if !strings.Contains(out, want) {
			t.Errorf("openssl output lacks %q:\n%s", want, out)
		}
	}
	// The same response verified against another CA must fail.
	other := newWallClockOCSPFixture(t, sigalg.ECDSAP256)
	dir2 := writeFiles(t, map[string][]byte{"resp.der": der, "root.pem": pemBytes(other.Chain()[1]), "issuing.pem": pemBytes(other.Chain()[0])})
	if out, err := runOpenSSL(t, dir2, "ocsp", "-respin", "resp.der", "-issuer", "issuing.pem", "-CAfile", "root.pem", "-no_nonce"); err == nil && regexp.MustCompile(`(?m)^Response verify OK`).MatchString(out) {
		t.Errorf("openssl accepts the response under another CA:\n%s", out)
	}
}

// newWallClockOCSPFixture is newOCSPFixture with a CA on time.Now.
func newWallClockOCSPFixture(t *testing.T, suite sigalg.ID) *ocspFixture {
	t.Helper()
	base := t.TempDir()
	tc := &testCA{dir: filepath.Join(base, "ca"), keyDir: filepath.Join(base, "keys")}
	tc.km = newKeyManager(t, tc.keyDir)
	ca, err := Open(context.Background(), tc.km, tc.dir, Config{Suite: suite})
	if err != nil {
		t.Fatal(err)
	}
	tc.CA = ca
	f := &ocspFixture{testCA: tc}
	pub, err := tc.km.CreateKey(context.Background(), keys.CreateKeyRequest{Name: KeyOCSPResponder, Suite: suite})
	if err != nil {
		t.Fatal(err)
	}
	if f.responderDER, err = ca.IssueOCSPResponder(context.Background(), pub, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	f.responderKey = tc.signer(t, KeyOCSPResponder)
	if f.responder, err = NewOCSPSigner(ca.Chain()[0], f.responderDER, f.responderKey); err != nil {
		t.Fatal(err)
	}
	for _, label := range []string{"ocsp-a", "ocsp-b"} {
		f.devices = append(f.devices, issueDevice(t, ca, deviceKey(t, sigalg.ECDSAP256, label).Public(), label))
	}
	return f
}
