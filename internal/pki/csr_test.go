package pki

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

func TestCSRRoundTrip(t *testing.T) {
	for _, s := range sigalg.All() {
		t.Run(string(s.ID()), func(t *testing.T) {
			key := deviceKey(t, s.ID(), "csr")
			der, err := CreateCSR(key, "device-1")
			if err != nil {
				t.Fatalf("CreateCSR: %v", err)
			}
			csr, err := ParseCSR(der)
			if err != nil {
				t.Fatalf("ParseCSR: %v", err)
			}
			spki, _ := sigalg.MarshalPublicKey(key.Public())
			if csr.Suite != s.ID() || csr.Subject.CommonName != "device-1" || !bytes.Equal(csr.SPKI, spki) {
				t.Errorf("got suite %s, CN %q", csr.Suite, csr.Subject.CommonName)
			}
			again, _ := sigalg.MarshalPublicKey(csr.PublicKey)
			if !bytes.Equal(again, spki) {
				t.Error("PublicKey does not match SPKI")
			}
			// crypto/x509 reads every request; it checks the signature
			// of the classical ones.
			std, err := x509.ParseCertificateRequest(der)
			if err != nil {
				t.Fatalf("x509.ParseCertificateRequest: %v", err)
			}
			if s.ID() == sigalg.ECDSAP256 || s.ID() == sigalg.Ed25519 {
				if err := std.CheckSignature(); err != nil {
					t.Errorf("crypto/x509 CheckSignature: %v", err)
				}
			}
		})
	}
}

// TestCSRFromKeyManager: a key manager's opaque signer makes a request
// for every suite, ML-DSA included.
func TestCSRFromKeyManager(t *testing.T) {
	ctx := context.Background()
	km := newKeyManager(t, "")
	for _, s := range sigalg.All() {
		name := "csr-" + string(s.ID())
		if _, err := km.CreateKey(ctx, keys.CreateKeyRequest{Name: name, Suite: s.ID()}); err != nil {
			t.Fatal(err)
		}
		signer, err := km.Signer(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		der, err := CreateCSR(signer, "")
		if err != nil {
			t.Fatalf("%s: CreateCSR: %v", s.ID(), err)
		}
		if csr, err := ParseCSR(der); err != nil || len(csr.Subject.Names) != 0 {
			t.Fatalf("%s: ParseCSR: %v (subject %v)", s.ID(), err, csr.Subject)
		}
	}
}

func TestParseCSRRefuses(t *testing.T) {
	for _, s := range []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519, sigalg.MLDSA65} {
		t.Run(string(s), func(t *testing.T) {
			key := deviceKey(t, s, "refuse")
			good, err := CreateCSR(key, "device")
			if err != nil {
				t.Fatal(err)
			}
			var req certificationRequest
			if _, err := asn1.Unmarshal(good, &req); err != nil {
				t.Fatal(err)
			}
			var info certificationRequestInfo
			if _, err := asn1.Unmarshal(req.Info.FullBytes, &info); err != nil {
				t.Fatal(err)
			}
			reassemble := func(info certificationRequestInfo, alg algorithmIdentifier, resign bool) []byte {
				raw, err := asn1.Marshal(info)
				if err != nil {
					t.Fatal(err)
				}
				sig := req.Signature
				if resign {
					b, err := sigalg.Sign(key, raw)
					if err != nil {
						t.Fatal(err)
					}
					sig = asn1.BitString{Bytes: b, BitLength: 8 * len(b)}
				}
				der, err := asn1.Marshal(certificationRequest{Info: asn1.RawValue{FullBytes: raw}, SignatureAlgorithm: alg, Signature: sig})
				if err != nil {
					t.Fatal(err)
				}
				return der
			}
			suite, _ := s.Suite()
			own := algorithmIdentifier{Algorithm: suite.OID()}

			tamperedSig := bytes.Clone(good)
			tamperedSig[len(tamperedSig)-2] ^= 1
			tamperedSubject := bytes.Clone(good)
			tamperedSubject[bytes.Index(good, []byte("device"))] = 'D'
			v1 := info
			v1.Version = 1
			weak := info
			weakKey := make(ed25519.PublicKey, ed25519.PublicKeySize)
			weakKey[0] = 1 // the identity point
			weakSPKI, _ := asn1.Marshal(struct {
				Alg algorithmIdentifier
				Key asn1.BitString
			}{algorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 3, 101, 112}}, asn1.BitString{Bytes: weakKey, BitLength: 256}})
			weak.PublicKey = asn1.RawValue{FullBytes: weakSPKI}
			badAttr := info
			badAttr.Attributes = []asn1.RawValue{{Tag: asn1.TagInteger, Bytes: []byte{1}}}
			otherOID := algorithmIdentifier{Algorithm: siblingOID(t, s)}
			if s == sigalg.Ed25519 {
				otherOID = algorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 3, 101, 113}} // Ed448
			}

			cases := []struct {
				name string
				der  []byte
				want error
			}{
				{"tampered signature", tamperedSig, ErrCSRSignature},
				{"tampered subject", tamperedSubject, ErrCSRSignature},
				{"trailing data", append(bytes.Clone(good), 0), ErrMalformedCSR},
				{"truncated", good[:len(good)-1], ErrMalformedCSR},
				{"oversized", make([]byte, MaxCSR+1), ErrMalformedCSR},
				{"empty", nil, ErrMalformedCSR},
				{"version 1", reassemble(v1, own, true), ErrMalformedCSR},
				{"weak key", reassemble(weak, own, false), sigalg.ErrWeakKey},
				{"attribute not a sequence", reassemble(badAttr, own, true), ErrMalformedCSR},
				{"signature algorithm not the key's", reassemble(info, otherOID, false), ErrMalformedCSR},
				{"algorithm parameters", reassemble(info, algorithmIdentifier{Algorithm: suite.OID(), Parameters: asn1.NullRawValue}, false), ErrMalformedCSR},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					_, err := ParseCSR(c.der)
					if !errors.Is(err, c.want) {
						t.Fatalf("ParseCSR = %v, want %v", err, c.want)
					}
				})
			}
			if _, err := ParseCSR(reassemble(info, own, false)); err != nil {
				t.Errorf("reassembled original refused: %v", err)
			}
		})
	}
}

func TestCreateCSRRefuses(t *testing.T) {
	key := deviceKey(t, sigalg.ECDSAP256, "create")
	for _, cn := range []string{strings.Repeat("x", 65), "a\x00b", "\xff"} {
		if _, err := CreateCSR(key, cn); err == nil {
			t.Errorf("CreateCSR(%q) succeeded", cn)
		}
	}
}
