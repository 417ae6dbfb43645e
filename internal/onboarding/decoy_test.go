package onboarding

import (
	"bytes"
	"crypto/rand"
	"encoding/asn1"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Every suite's real signatures imply that suite, whatever the message,
// so a genuine device is always checked against its own key.
func TestImpliedSuiteOfRealSignatures(t *testing.T) {
	for _, suite := range sigalg.All() {
		key, err := suite.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		msg := make([]byte, 64)
		for i := range 200 {
			rand.Read(msg)
			sig, err := suite.Sign(key, msg)
			if err != nil {
				t.Fatal(err)
			}
			if got := impliedSuite(sig); got != suite.ID() {
				t.Fatalf("%s signature %d (%d bytes) implies %s", suite.ID(), i, len(sig), got)
			}
		}
	}
}

func TestImpliedSuiteOfOtherForms(t *testing.T) {
	// A 64-byte P-256 signature (r and s of 29 bytes) is DER-shaped; an
	// Ed25519 one almost never is.
	der64 := append([]byte{0x30, 62, 0x02, 29}, bytes.Repeat([]byte{1}, 29)...)
	der64 = append(append(der64, 0x02, 29), bytes.Repeat([]byte{2}, 29)...)
	cases := []struct {
		sig  []byte
		want sigalg.ID
	}{
		{der64, sigalg.ECDSAP256},
		{append([]byte{0x30, 62, 0x02, 29}, make([]byte, 60)...), sigalg.Ed25519}, // second INTEGER missing
		{make([]byte, 64), sigalg.Ed25519},
		{make([]byte, 2420), sigalg.MLDSA44},
		{make([]byte, 3309), sigalg.MLDSA65},
		{make([]byte, 4627), sigalg.MLDSA87},
		{nil, sigalg.ECDSAP256},
		{make([]byte, 3310), sigalg.ECDSAP256},
	}
	for _, c := range cases {
		if got := impliedSuite(c.sig); got != c.want {
			t.Errorf("%d-byte signature % x…: implies %s, want %s", len(c.sig), c.sig[:min(len(c.sig), 6)], got, c.want)
		}
	}
}

// FuzzImpliedSuite: any bytes imply one of the suites there is a decoy
// for, and whatever the shape check takes for an ECDSA signature is the DER
// of a SEQUENCE of two INTEGERs.
func FuzzImpliedSuite(f *testing.F) {
	for _, suite := range sigalg.All() {
		key, _ := suite.GenerateKey(rand.Reader)
		sig, _ := suite.Sign(key, []byte("seed"))
		f.Add(sig)
	}
	f.Add([]byte{0x30, 6, 0x02, 1, 1, 0x02, 1, 1})
	f.Add([]byte{0x30, 0x80, 0x02, 0x00})
	decoys, err := newDecoys()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, sig []byte) {
		if _, ok := decoys[impliedSuite(sig)]; !ok {
			t.Fatalf("%d bytes imply %q, which has no decoy", len(sig), impliedSuite(sig))
		}
		if !isECDSASignatureShape(sig) {
			return
		}
		var rs struct{ R, S asn1.RawValue }
		rest, err := asn1.Unmarshal(sig, &rs)
		if err != nil || len(rest) != 0 || rs.R.Tag != asn1.TagInteger || rs.S.Tag != asn1.TagInteger {
			t.Fatalf("% x passes the shape check but is not SEQUENCE { INTEGER, INTEGER }: %v", sig, err)
		}
	})
}
