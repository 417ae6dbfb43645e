package pki

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

func openTestSet(t *testing.T, base string, first sigalg.ID, suites ...sigalg.ID) *CASet {
	t.Helper()
	km := newKeyManager(t, filepath.Join(base, "keys"))
	set, err := OpenSet(context.Background(), km, SetConfig{Config: Config{Suite: first, Now: fixedClock,
		RevocationBaseURL: "http://revocation.test"}, Dir: filepath.Join(base, "ca"), MoreDir: filepath.Join(base, "cas"), Suites: suites})
	if err != nil {
		t.Fatalf("OpenSet: %v", err)
	}
	return set
}

// An ECDSA first CA and an ML-DSA-65 one: each issues under its own
// hierarchy, with subjects, keys, CRL and OCSP URLs of its own, and the
// set verifies devices of both and refuses a foreign chain.
func TestCASetTwoSuites(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	set := openTestSet(t, base, sigalg.ECDSAP256, sigalg.ECDSAP256, sigalg.MLDSA65)
	all := set.All()
	if len(all) != 2 || all[0] != set.First() || all[0].Suite() != sigalg.ECDSAP256 || all[1].Suite() != sigalg.MLDSA65 {
		t.Fatalf("set = %v", all)
	}
	pq, err := set.Get("ml-dsa-65")
	if err != nil || pq != all[1] {
		t.Fatalf("Get(ml-dsa-65) = %v, %v", pq, err)
	}
	if first, err := set.Get(""); err != nil || first != all[0] {
		t.Fatalf(`Get("") = %v, %v`, first, err)
	}
	if _, err := set.Get("ed25519"); !errors.Is(err, ErrUnknownCA) {
		t.Fatalf("Get(ed25519) = %v, want ErrUnknownCA", err)
	}
	if got := pq.IssuingCertificate().Subject.CommonName; got != "Hallmark ml-dsa-65 Issuing CA" {
		t.Fatalf("further CA's issuing subject = %q", got)
	}
	if got := pq.RootCertificate().Subject.CommonName; got != "Hallmark ml-dsa-65 Root CA" {
		t.Fatalf("further CA's root subject = %q", got)
	}
	if pq.KeyName(KeyIssuing) != "ml-dsa-65.ca-issuing" || all[0].KeyName(KeyIssuing) != KeyIssuing {
		t.Fatalf("key names %q, %q", pq.KeyName(KeyIssuing), all[0].KeyName(KeyIssuing))
	}
	if pq.OCSPURL() != "http://revocation.test/ocsp/ml-dsa-65" || all[0].OCSPURL() != "http://revocation.test/ocsp" {
		t.Fatalf("OCSP URLs %q, %q", pq.OCSPURL(), all[0].OCSPURL())
	}
	if pq.CRLURL() == all[0].CRLURL() {
		t.Fatalf("both CAs publish at %s", pq.CRLURL())
	}
	// A further CA serves no TLS and has no TLS root file.
	if _, err := pq.IssueServer(context.Background(), []string{"x.test"}, nil, time.Hour); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("IssueServer by a further CA = %v", err)
	}
	if _, err := os.Stat(filepath.Join(base, "cas", "ml-dsa-65", FileTLSRoot)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("further CA has a %s: %v", FileTLSRoot, err)
	}

	for _, ca := range all {
		key := deviceKey(t, sigalg.ECDSAP256, "set "+ca.Name())
		id := identity.FromSPKI(mustSPKI(t, key.Public()))
		iss, err := ca.IssueDevice(context.Background(), DeviceRequest{Identity: id, PublicKey: key.Public(), Validity: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		leaf, got, err := set.VerifyDevice([][]byte{iss.DER}, testNow)
		if err != nil || got != id {
			t.Fatalf("%s: VerifyDevice = %v, %v", ca.Name(), got, err)
		}
		if set.ByIssuer(leaf) != ca {
			t.Fatalf("%s: ByIssuer found another CA", ca.Name())
		}
		// crypto/x509 names ECDSA; ML-DSA is unknown to it.
		wantAlg := map[sigalg.ID]x509.SignatureAlgorithm{sigalg.ECDSAP256: x509.ECDSAWithSHA256, sigalg.MLDSA65: x509.UnknownSignatureAlgorithm}[ca.Suite()]
		if leaf.SignatureAlgorithm != wantAlg {
			t.Fatalf("%s: signature algorithm %v", ca.Name(), leaf.SignatureAlgorithm)
		}
		if !bytes.Equal(leaf.RawIssuer, ca.IssuingCertificate().RawSubject) {
			t.Fatalf("%s: leaf issued by %s", ca.Name(), leaf.Issuer)
		}
		// Another CA's VerifyDevice refuses it.
		other := all[1-indexOf(all, ca)]
		if _, _, err := other.VerifyDevice([][]byte{iss.DER}, testNow); !errors.Is(err, ErrUntrusted) {
			t.Fatalf("%s's device verified by %s: %v", ca.Name(), other.Name(), err)
		}
	}
	foreign := newTestCA(t, sigalg.ECDSAP256)
	key := deviceKey(t, sigalg.ECDSAP256, "foreign")
	iss, err := foreign.IssueDevice(context.Background(), DeviceRequest{Identity: identity.FromSPKI(mustSPKI(t, key.Public())),
		PublicKey: key.Public(), Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := set.VerifyDevice([][]byte{iss.DER}, testNow); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("foreign device: %v, want ErrUntrusted", err)
	}
	if _, _, err := set.VerifyDevice(nil, testNow); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("no chain: %v", err)
	}
	if _, _, err := set.VerifyDevice([][]byte{[]byte("garbage")}, testNow); err == nil {
		t.Fatal("garbage verified")
	}

	// Trust bundles: the product CA's root, then the platform's TLS
	// anchor (the ECDSA first root).
	if got := pemCerts(t, set.TrustBundle(pq)); len(got) != 2 || !bytes.Equal(got[0], pq.RootCertificate().Raw) ||
		!bytes.Equal(got[1], all[0].RootCertificate().Raw) {
		t.Fatalf("TrustBundle(ml-dsa-65) holds %d certificates, not its root and the TLS root", len(got))
	}
	if !bytes.Equal(set.TrustBundle(all[0]), all[0].RootPEM()) {
		t.Fatal("TrustBundle(first) is not its RootPEM")
	}

	// Reopened without asking for the ML-DSA CA: it is still loaded, with
	// the same certificates; its keys are not created again.
	again := openTestSet(t, base, "")
	if len(again.All()) != 2 || !bytes.Equal(again.All()[1].IssuingCertificate().Raw, pq.IssuingCertificate().Raw) ||
		!bytes.Equal(again.First().IssuingCertificate().Raw, all[0].IssuingCertificate().Raw) {
		t.Fatal("reopened set differs")
	}
}

// An ML-DSA first CA with an ECDSA further CA: the bundle of the ECDSA
// product carries the first CA's ECDSA TLS root.
func TestCASetMLDSAFirst(t *testing.T) {
	t.Parallel()
	set := openTestSet(t, t.TempDir(), sigalg.MLDSA65, sigalg.ECDSAP256)
	ec, err := set.Get("ecdsa-p256")
	if err != nil {
		t.Fatal(err)
	}
	got := pemCerts(t, set.TrustBundle(ec))
	first := pemCerts(t, set.First().RootPEM())
	if len(got) != 2 || len(first) != 2 || !bytes.Equal(got[0], ec.RootCertificate().Raw) || !bytes.Equal(got[1], first[1]) {
		t.Fatal("TrustBundle(ecdsa-p256) is not its root and the first CA's TLS root")
	}
}

// A data directory whose further-CA directory holds something else, or a
// CA of the first CA's suite, is refused; so is an unknown suite.
func TestCASetRefuses(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	openTestSet(t, base, sigalg.ECDSAP256)
	km := newKeyManager(t, filepath.Join(base, "keys"))
	open := func(suites ...sigalg.ID) error {
		_, err := OpenSet(context.Background(), km, SetConfig{Config: Config{Now: fixedClock}, Dir: filepath.Join(base, "ca"),
			MoreDir: filepath.Join(base, "cas"), Suites: suites})
		return err
	}
	if err := open("rsa-2048"); err == nil {
		t.Fatal("unknown suite accepted")
	}
	if err := os.MkdirAll(filepath.Join(base, "cas", "backup"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := open(); err == nil {
		t.Fatal("a stray directory among the CAs was accepted")
	}
	if err := os.Rename(filepath.Join(base, "cas", "backup"), filepath.Join(base, "cas", "ecdsa-p256")); err != nil {
		t.Fatal(err)
	}
	if err := open(); !errors.Is(err, ErrCAMismatch) {
		t.Fatalf("a further CA of the first CA's suite: %v", err)
	}
}

func indexOf(cas []*CA, ca *CA) int {
	for i, c := range cas {
		if c == ca {
			return i
		}
	}
	return -1
}

func pemCerts(t *testing.T, data []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out
		}
		if b.Type != "CERTIFICATE" {
			t.Fatalf("PEM block %q in a trust bundle", b.Type)
		}
		out = append(out, b.Bytes)
	}
}

func mustSPKI(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := sigalg.MarshalPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
