package est

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

func testCert(t testing.TB, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestCertsOnlyRoundTrip(t *testing.T) {
	certs := [][]byte{testCert(t, "leaf"), testCert(t, "issuing"), testCert(t, "root")}
	p7, err := CertsOnly(certs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseCertsOnly(p7)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(certs) {
		t.Fatalf("%d certificates back, want %d", len(got), len(certs))
	}
	for i := range certs {
		if !bytes.Equal(got[i], certs[i]) {
			t.Errorf("certificate %d differs", i)
		}
	}
	if _, err := CertsOnly(nil); err == nil {
		t.Error("an empty certs-only message was encoded")
	}
	if _, err := CertsOnly([][]byte{append(certs[0], 0)}); err == nil {
		t.Error("a certificate with trailing bytes was encoded")
	}
}

func TestDecodeCSR(t *testing.T) {
	der := []byte{0x30, 0x03, 0x02, 0x01, 0x01}
	b64 := base64.StdEncoding.EncodeToString(der)
	for name, body := range map[string]string{"plain": b64, "line breaks": b64[:4] + "\r\n" + b64[4:] + "\n"} {
		got, err := DecodeCSR([]byte(body))
		if err != nil || !bytes.Equal(got, der) {
			t.Errorf("%s: %x, %v", name, got, err)
		}
	}
	for name, body := range map[string]string{
		"empty":          "\r\n",
		"not base64":     "-----BEGIN CERTIFICATE REQUEST-----",
		"truncated":      b64[:len(b64)-2],
		"trailing":       base64.StdEncoding.EncodeToString(append(der, 0)),
		"not a sequence": base64.StdEncoding.EncodeToString([]byte{0x02, 0x01, 0x01}),
		"too large":      strings.Repeat("A", MaxBody+4),
	} {
		if _, err := DecodeCSR([]byte(body)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func FuzzDecodeCSR(f *testing.F) {
	f.Add([]byte("MAMCAQE="))
	f.Add([]byte("MAMC\r\nAQE=\r\n"))
	f.Add([]byte("MIIB"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		der, err := DecodeCSR(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if len(der) == 0 || der[0] != 0x30 {
			t.Fatalf("accepted %x, not a SEQUENCE", der)
		}
	})
}

func FuzzParseCertsOnly(f *testing.F) {
	p7, err := CertsOnly([][]byte{testCert(f, "a"), testCert(f, "b")})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(p7)
	f.Add(p7[:len(p7)/2])
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		certs, err := ParseCertsOnly(der)
		if err != nil {
			return
		}
		// Each certificate returned is one whole DER element.
		for i, c := range certs {
			var v asn1.RawValue
			if rest, err := asn1.Unmarshal(c, &v); err != nil || len(rest) != 0 {
				t.Fatalf("certificate %d is not one DER element: %v", i, err)
			}
		}
	})
}
