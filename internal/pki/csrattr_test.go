package pki

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// TestCSRChallengePassword: the attribute round-trips, crypto/x509 reads
// it the same, and a request without one parses with none.
func TestCSRChallengePassword(t *testing.T) {
	for _, s := range sigalg.All() {
		key := deviceKey(t, s.ID(), "password")
		for _, pw := range []string{"", strings.Repeat("0f", 32), "naïve café", strings.Repeat("x", MaxChallengePassword)} {
			der, err := CreateCSRWith(key, CSROptions{CommonName: "device-1", ChallengePassword: pw})
			if err != nil {
				t.Fatalf("%s %q: CreateCSRWith: %v", s.ID(), pw, err)
			}
			csr, err := ParseCSR(der)
			if err != nil || csr.ChallengePassword != pw || csr.Subject.CommonName != "device-1" {
				t.Fatalf("%s %q: ParseCSR = %+v, %v", s.ID(), pw, csr, err)
			}
			if s.ID() == sigalg.ECDSAP256 {
				std, err := x509.ParseCertificateRequest(der)
				if err != nil || std.CheckSignature() != nil {
					t.Fatalf("crypto/x509 refuses the request: %v", err)
				}
			}
		}
	}
}

func TestCSRChallengePasswordRefused(t *testing.T) {
	key := deviceKey(t, sigalg.Ed25519, "password")
	for _, pw := range []string{"a\x00b", "\xff", strings.Repeat("x", MaxChallengePassword+1)} {
		if _, err := CreateCSRWith(key, CSROptions{ChallengePassword: pw}); err == nil {
			t.Errorf("CreateCSRWith(password %q) succeeded", pw)
		}
	}
	attr := func(values ...asn1.RawValue) asn1.RawValue {
		der, err := asn1.Marshal(csrAttribute{Type: oidChallengePassword, Values: values})
		if err != nil {
			t.Fatal(err)
		}
		return asn1.RawValue{FullBytes: der}
	}
	text := func(tag int, s string) asn1.RawValue {
		return asn1.RawValue{Class: asn1.ClassUniversal, Tag: tag, Bytes: []byte(s)}
	}
	good := attr(text(asn1.TagPrintableString, "abc"))
	other, _ := asn1.Marshal(csrAttribute{Type: asn1.ObjectIdentifier{1, 2, 3}, Values: []asn1.RawValue{text(asn1.TagUTF8String, "x")}})
	noValues, _ := asn1.Marshal(struct{ Type asn1.ObjectIdentifier }{oidChallengePassword})
	for _, c := range []struct {
		name  string
		attrs []asn1.RawValue
	}{
		{"twice", []asn1.RawValue{good, good}},
		{"two values", []asn1.RawValue{attr(text(asn1.TagPrintableString, "a"), text(asn1.TagPrintableString, "b"))}},
		{"an integer", []asn1.RawValue{attr(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagInteger, Bytes: []byte{1}})}},
		{"a BMPString", []asn1.RawValue{attr(text(30, "\x00a"))}},
		{"not printable", []asn1.RawValue{attr(text(asn1.TagPrintableString, "a*b"))}},
		{"control character", []asn1.RawValue{attr(text(asn1.TagUTF8String, "a\nb"))}},
		{"empty", []asn1.RawValue{attr(text(asn1.TagUTF8String, ""))}},
		{"no values", []asn1.RawValue{{FullBytes: noValues}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := challengePasswordOf(c.attrs); !errors.Is(err, ErrMalformedCSR) {
				t.Fatalf("challengePasswordOf = %v, want ErrMalformedCSR", err)
			}
		})
	}
	if pw, err := challengePasswordOf([]asn1.RawValue{{FullBytes: other}, good}); err != nil || pw != "abc" {
		t.Fatalf("with another attribute: %q, %v", pw, err)
	}
}
