package onboardpki

import (
	"context"
	"crypto/rand"
	"encoding/pem"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/keys/softkms"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// TestIssuerAndCSRs runs the binding both ways over a real CA: a request
// made by CSRs is read back by the Issuer with its name and binding, and
// what the Issuer signs verifies to the CA's root as a certificate for the
// identity.
func TestIssuerAndCSRs(t *testing.T) {
	for _, caSuite := range []sigalg.ID{sigalg.ECDSAP256, sigalg.MLDSA65} {
		t.Run(string(caSuite), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			km, err := softkms.Open(ctx, filepath.Join(dir, "keys"), []byte("test passphrase"), softkms.InsecureKDFIterations(1000))
			if err != nil {
				t.Fatal(err)
			}
			defer km.Close()
			ca, err := pki.Open(ctx, km, filepath.Join(dir, "ca"), pki.Config{Suite: caSuite})
			if err != nil {
				t.Fatal(err)
			}
			at := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
			iss := NewIssuer(ca, func() time.Time { return at })

			suite, err := sigalg.ECDSAP256.Suite()
			if err != nil {
				t.Fatal(err)
			}
			op, err := suite.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			id := identity.FromSPKI([]byte("an enrolment key"))
			der, err := CSRs{}.MakeCSR(op, id.String(), "binding-value")
			if err != nil {
				t.Fatal(err)
			}
			req, err := iss.ParseCSR(der)
			if err != nil {
				t.Fatal(err)
			}
			if req.CommonName != id.String() || req.ChallengePassword != "binding-value" {
				t.Fatalf("request read back as CN %q, challengePassword %q", req.CommonName, req.ChallengePassword)
			}
			der[len(der)-1] ^= 1
			if _, err := iss.ParseCSR(der); err == nil {
				t.Fatal("a request with a broken self-signature was accepted")
			}

			cert, err := iss.Issue(ctx, id, req.PublicKey, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if cert.Identity != id || !cert.IssuedAt.Equal(at) || cert.NotAfter.Sub(cert.NotBefore) < time.Hour {
				t.Fatalf("issued %+v", cert)
			}
			chain := [][]byte{cert.DER}
			for _, p := range iss.ChainPEM() {
				block, _ := pem.Decode([]byte(p))
				if block == nil {
					t.Fatalf("chain entry is not PEM: %q", p)
				}
				chain = append(chain, block.Bytes)
			}
			leaf, got, err := ca.VerifyDevice(chain, time.Now())
			if err != nil || got != id || leaf == nil {
				t.Fatalf("VerifyDevice = %v, %v, want the identity", got, err)
			}
			if !strings.Contains(iss.TrustBundlePEM(), "BEGIN CERTIFICATE") {
				t.Fatalf("trust bundle %q", iss.TrustBundlePEM())
			}
		})
	}
}
