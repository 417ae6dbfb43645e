package cmp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"testing"
	"time"
)

// refuseAll is a platform that refuses every request, so that a test
// sees only what the door itself decides.
type refuseAll struct{ calls *int }

var errRefused = &Refusal{FailBit: FailNotAuthorized, Text: "refused"}

func (r refuseAll) Enrol(context.Context, Origin, []byte, []byte) (Issued, error) {
	*r.calls++
	return Issued{}, errRefused
}
func (r refuseAll) Renew(context.Context, Origin, *x509.Certificate, []byte) (Issued, error) {
	*r.calls++
	return Issued{}, errRefused
}
func (r refuseAll) Revoke(context.Context, Origin, *x509.Certificate, int) error {
	*r.calls++
	return errRefused
}

func testServer(t testing.TB, now time.Time, calls *int) *Server {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cmp test"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), SubjectKeyId: []byte{1, 2, 3}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(Config{Devices: refuseAll{calls: calls}, Signer: k, SignerChain: [][]byte{der},
		VerifyDevice: func([][]byte, time.Time) (*x509.Certificate, error) { return nil, errors.New("no CA here") },
		CACerts:      func(context.Context, string) ([][]byte, error) { return [][]byte{der}, nil }, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// failBit answers the failInfo bit of an error response, -1 otherwise.
func failBit(t testing.TB, der []byte) int {
	t.Helper()
	m, err := Parse(der)
	if err != nil {
		t.Fatalf("the response does not parse: %v", err)
	}
	if m.Type() != TypeError {
		return -1
	}
	c, _ := m.Content()
	var e ErrorContent
	if _, err := asn1.Unmarshal(c, &e); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < e.Status.FailInfo.BitLength; i++ {
		if e.Status.FailInfo.At(i) == 1 {
			return i
		}
	}
	return -1
}

func seedTime(t testing.TB, der []byte) time.Time {
	m, err := Parse(der)
	if err != nil {
		t.Fatal(err)
	}
	return m.Header.MessageTime
}

func TestHandleRefusals(t *testing.T) {
	seeds := openSSLSeeds(t)
	ir := seeds["openssl-ir.der"]
	at := seedTime(t, ir)
	calls := 0
	// Recorded long ago: badTime.
	if bit := failBit(t, must(testServer(t, at.Add(time.Hour), &calls).Handle(context.Background(), ir, Origin{Addr: "a"}))); bit != FailBadTime {
		t.Errorf("stale ir: bit %d, want badTime", bit)
	}
	s := testServer(t, at, &calls)
	// OpenSSL leaves a self-signed protecting certificate out.
	if bit := failBit(t, must(s.Handle(context.Background(), ir, Origin{Addr: "a"}))); bit != FailSignerNotTrusted {
		t.Errorf("ir without its certificate: bit %d, want signerNotTrusted", bit)
	}
	// kur's protecting certificate must be the platform's.
	if bit := failBit(t, must(s.Handle(context.Background(), seeds["openssl-kur.der"], Origin{Addr: "a"}))); bit != FailSignerNotTrusted {
		t.Errorf("kur by a foreign certificate: bit %d, want signerNotTrusted", bit)
	}
	if bit := failBit(t, must(s.Handle(context.Background(), []byte("junk"), Origin{Addr: "a"}))); bit != FailBadDataFormat {
		t.Errorf("junk: bit %d, want badDataFormat", bit)
	}
	if calls != 0 {
		t.Errorf("the platform was asked %d times for refused messages", calls)
	}
	// A genm protected by a key the door cannot see is refused; one
	// without protection is answered, once per transaction.
	genm := seeds["openssl-genm.der"]
	s = testServer(t, seedTime(t, genm), &calls)
	if bit := failBit(t, must(s.Handle(context.Background(), genm, Origin{Addr: "a"}))); bit != FailSignerNotTrusted {
		t.Errorf("genm protected by an unknown key: bit %d, want signerNotTrusted", bit)
	}
	m, _ := Parse(genm)
	m.Protection = asn1.BitString{}
	m.Header.TransactionID = append([]byte{1}, m.Header.TransactionID[1:]...)
	m.Header.Raw = nil
	genm = must(m.Marshal())
	if bit := failBit(t, must(s.Handle(context.Background(), genm, Origin{Addr: "a"}))); bit != -1 {
		t.Errorf("genm: bit %d, want genp", bit)
	}
	if bit := failBit(t, must(s.Handle(context.Background(), genm, Origin{Addr: "a"}))); bit != FailTransactionIDInUse {
		t.Errorf("replayed genm: bit %d, want transactionIdInUse", bit)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func FuzzHandle(f *testing.F) {
	seeds := openSSLSeeds(f)
	for _, der := range seeds {
		f.Add(der)
	}
	calls := 0
	s := testServer(f, seedTime(f, seeds["openssl-ir.der"]), &calls)
	f.Fuzz(func(t *testing.T, der []byte) {
		resp, err := s.Handle(context.Background(), der, Origin{Addr: "fuzz"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(resp); err != nil {
			t.Fatalf("the response does not parse: %v", err)
		}
	})
}
