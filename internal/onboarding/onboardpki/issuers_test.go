package onboardpki

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/keys/softkms"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// TestIssuers: over a set of an ECDSA and an ML-DSA-65 CA, a product
// issues under the CA it names (the first for none), an unknown name is
// an error, and each certificate finds the CA that signed it, with that
// CA's chain and trust bundle.
func TestIssuers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	km, err := softkms.Open(ctx, filepath.Join(dir, "keys"), []byte("test passphrase"), softkms.InsecureKDFIterations(1000))
	if err != nil {
		t.Fatal(err)
	}
	defer km.Close()
	set, err := pki.OpenSet(ctx, km, pki.SetConfig{Config: pki.Config{Suite: sigalg.ECDSAP256}, Dir: filepath.Join(dir, "ca"),
		MoreDir: filepath.Join(dir, "cas"), Suites: []sigalg.ID{sigalg.MLDSA65}})
	if err != nil {
		t.Fatal(err)
	}
	is := NewIssuers(set, nil)
	if _, err := onboarding.IssuerFor(is, onboarding.Product{IssuingCA: "ml-dsa-87"}); !errors.Is(err, pki.ErrUnknownCA) {
		t.Fatalf("unknown CA: %v", err)
	}
	suite, _ := sigalg.ECDSAP256.Suite()
	key, err := suite.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "ecdsa-p256", "ml-dsa-65"} {
		ca, _ := set.Get(name)
		iss, err := onboarding.IssuerFor(is, onboarding.Product{ID: "p", IssuingCA: name})
		if err != nil {
			t.Fatal(err)
		}
		cert, err := iss.Issue(ctx, identity.ID{1}, key.Public(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := pki.ParseCertificate(cert.DER)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(leaf.AuthorityKeyId, ca.IssuingCertificate().SubjectKeyId) {
			t.Fatalf("%q: issued by %s", name, leaf.Issuer)
		}
		signer := is.ForCertificate(cert)
		if signer != iss {
			t.Fatalf("%q: ForCertificate found another issuer", name)
		}
		block, _ := pem.Decode([]byte(signer.ChainPEM()[0]))
		if block == nil || !bytes.Equal(block.Bytes, ca.Chain()[0]) || signer.TrustBundlePEM() != string(set.TrustBundle(ca)) {
			t.Fatalf("%q: chain or bundle not its CA's", name)
		}
	}
	if is.ForCertificate(onboarding.Certificate{DER: []byte("junk")}) != nil {
		t.Fatal("ForCertificate of junk")
	}
}
