package sealing

import (
	"bytes"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
)

func TestKeyEncodingRoundTrip(t *testing.T) {
	for _, kem := range allKEMs {
		t.Run(string(kem), func(t *testing.T) {
			priv := testKey(t, kem)
			p := kems[kem]
			privDER, err := MarshalPrivateKey(priv)
			if err != nil {
				t.Fatal(err)
			}
			pubDER := MarshalPublicKey(priv.Public())
			if len(privDER) != keyPrefixSize+p.privateSize || len(pubDER) != keyPrefixSize+p.publicSize {
				t.Fatalf("encoded sizes %d and %d", len(privDER), len(pubDER))
			}
			priv2, err := ParsePrivateKey(privDER)
			if err != nil {
				t.Fatal(err)
			}
			if !priv2.Public().Equal(priv.Public()) || priv2.KEM() != kem {
				t.Fatal("parsed private key has another public key")
			}
			pub2, err := ParsePublicKey(pubDER)
			if err != nil || !pub2.Equal(priv.Public()) || pub2.KEM() != kem {
				t.Fatalf("parse public key: %v", err)
			}
			if pub2.Fingerprint() != priv.Public().Fingerprint() {
				t.Fatal("fingerprint changed across encoding")
			}
			// A parsed private key opens what was sealed to the original.
			sealed, _ := Seal(pub2, nil, nil, []byte("x"))
			if _, err := Open(priv2, nil, nil, sealed); err != nil {
				t.Fatal(err)
			}

			privPEM, err := EncodePrivateKeyPEM(priv)
			if err != nil {
				t.Fatal(err)
			}
			pubPEM := EncodePublicKeyPEM(priv.Public())
			if !bytes.Contains(privPEM, []byte(PEMPrivateKey)) || !bytes.Contains(pubPEM, []byte(PEMPublicKey)) {
				t.Fatal("PEM block types")
			}
			priv3, err := ParsePrivateKeyPEM(privPEM)
			if err != nil || !priv3.Public().Equal(priv.Public()) {
				t.Fatalf("private PEM: %v", err)
			}
			for _, data := range [][]byte{pubPEM, privPEM, append([]byte("\n  "), pubPEM...)} {
				pub3, err := ParsePublicKeyPEM(data)
				if err != nil || !pub3.Equal(priv.Public()) {
					t.Fatalf("public PEM: %v", err)
				}
			}
			if _, err := ParsePrivateKeyPEM(pubPEM); !errors.Is(err, ErrMalformedKey) {
				t.Fatalf("public key accepted as private: %v", err)
			}
		})
	}
}

func TestFingerprintsDiffer(t *testing.T) {
	seen := map[[32]byte]KEM{}
	for _, kem := range allKEMs {
		fp := testKey(t, kem).Public().Fingerprint()
		if _, dup := seen[fp]; dup {
			t.Fatal("two keys share a fingerprint")
		}
		seen[fp] = kem
	}
	if testKey(t, X25519).Public().Equal(nil) {
		t.Fatal("a key equals nil")
	}
}

func TestParseKeyRefuses(t *testing.T) {
	pubDER := MarshalPublicKey(testKey(t, MLKEM768X25519).Public())
	privDER, _ := MarshalPrivateKey(testKey(t, X25519))
	with := func(b []byte, i int, v byte) []byte { c := bytes.Clone(b); c[i] = v; return c }
	// An X25519 scalar with the low bits set is the same key as the
	// clamped one, so it must not be a second encoding of it.
	unclamped := with(privDER, keyPrefixSize, privDER[keyPrefixSize]|7)
	// An ML-KEM encapsulation key whose first coefficient is 4095 >= q.
	outOfRange := with(with(pubDER, keyPrefixSize, 0xff), keyPrefixSize+1, 0x0f)
	cases := []struct {
		name  string
		parse func([]byte) error
		data  []byte
	}{
		{"public empty", parsePub, nil},
		{"public prefix only", parsePub, pubDER[:keyPrefixSize]},
		{"public version 2", parsePub, with(pubDER, 0, 2)},
		{"public version 0", parsePub, with(pubDER, 0, 0)},
		{"public unknown KEM", parsePub, with(pubDER, 3, 0x7b)},
		{"public kind 0", parsePub, with(pubDER, 1, 0)},
		{"public truncated", parsePub, pubDER[:len(pubDER)-1]},
		{"public trailing byte", parsePub, append(bytes.Clone(pubDER), 0)},
		{"public out-of-range ML-KEM coefficient", parsePub, outOfRange},
		{"public key given as private", parsePriv, pubDER},
		{"private empty", parsePriv, nil},
		{"private truncated", parsePriv, privDER[:len(privDER)-1]},
		{"private trailing byte", parsePriv, append(bytes.Clone(privDER), 0)},
		{"private unclamped X25519", parsePriv, unclamped},
		{"private key given as public", parsePub, privDER},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.parse(tc.data); !errors.Is(err, ErrMalformedKey) {
				t.Fatalf("err = %v, want ErrMalformedKey", err)
			}
		})
	}
}

func parsePub(b []byte) error  { _, err := ParsePublicKey(b); return err }
func parsePriv(b []byte) error { _, err := ParsePrivateKey(b); return err }

func TestParseKeyPEMRefuses(t *testing.T) {
	pubPEM := EncodePublicKeyPEM(testKey(t, X25519).Public())
	der := MarshalPublicKey(testKey(t, X25519).Public())
	cases := map[string][]byte{
		"empty":          nil,
		"not PEM":        []byte("hello"),
		"text before":    append([]byte("key:\n"), pubPEM...),
		"text after":     append(bytes.Clone(pubPEM), "trailer\n"...),
		"two blocks":     append(bytes.Clone(pubPEM), pubPEM...),
		"PKIX block":     pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
		"with headers":   pem.EncodeToMemory(&pem.Block{Type: PEMPublicKey, Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: der}),
		"too large":      append(bytes.Clone(pubPEM), strings.Repeat(" ", MaxKeyPEM)...),
		"bad key inside": pem.EncodeToMemory(&pem.Block{Type: PEMPublicKey, Bytes: der[1:]}),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseKeyPEM(data); !errors.Is(err, ErrMalformedKey) {
				t.Fatalf("err = %v, want ErrMalformedKey", err)
			}
		})
	}
}
