package identity

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

func TestFromPublicKeyIsSHA256OfSPKI(t *testing.T) {
	for _, suite := range sigalg.All() {
		t.Run(string(suite.ID()), func(t *testing.T) {
			key, err := suite.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			id, err := FromPublicKey(key.Public())
			if err != nil {
				t.Fatal(err)
			}
			spki, _ := sigalg.MarshalPublicKey(key.Public())
			if want := sha256.Sum256(spki); !bytes.Equal(id[:], want[:]) {
				t.Fatalf("identity %s is not SHA-256 of the SPKI", id)
			}
			if id != FromSPKI(spki) {
				t.Fatal("FromSPKI disagrees with FromPublicKey")
			}
			other, _ := suite.GenerateKey(rand.Reader)
			if otherID, _ := FromPublicKey(other.Public()); otherID.Equal(id) {
				t.Fatal("two keys share an identity")
			}
		})
	}
}

func TestParseRoundTrip(t *testing.T) {
	id := FromSPKI([]byte("some key"))
	s := id.String()
	if len(s) != 64 || strings.ToLower(s) != s {
		t.Fatalf("String() = %q, want 64 lowercase hex characters", s)
	}
	back, err := Parse(s)
	if err != nil || back != id {
		t.Fatalf("Parse(String()) = %v, %v", back, err)
	}
	if id.Short() != s[:12] {
		t.Errorf("Short() = %q", id.Short())
	}
	text, _ := json.Marshal(struct{ ID ID }{id})
	var decoded struct{ ID ID }
	if err := json.Unmarshal(text, &decoded); err != nil || decoded.ID != id {
		t.Fatalf("JSON round trip: %s, %v", text, err)
	}
}

func TestParseRefusesAnythingElse(t *testing.T) {
	good := FromSPKI(nil).String()
	cases := map[string]string{
		"empty":        "",
		"short":        good[:63],
		"long":         good + "0",
		"upper case":   strings.ToUpper(good),
		"0x prefix":    "0x" + good[2:],
		"space":        " " + good[1:],
		"non-hex":      "g" + good[1:],
		"non-ASCII":    "é" + good[2:],
		"NUL":          "\x00" + good[1:],
		"base64 of 32": "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU",
	}
	for name, s := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse(s); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse(%q) error = %v, want ErrMalformed", s, err)
			}
		})
	}
	if _, err := FromBytes(make([]byte, 31)); !errors.Is(err, ErrMalformed) {
		t.Errorf("FromBytes(31 bytes) = %v", err)
	}
}

func TestEqualIsExact(t *testing.T) {
	a := FromSPKI([]byte("a"))
	b := a
	b[31] ^= 1
	if !a.Equal(a) || a.Equal(b) {
		t.Fatal("Equal is wrong")
	}
	if !(ID{}).IsZero() || a.IsZero() {
		t.Fatal("IsZero is wrong")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(FromSPKI(nil).String())
	f.Add(strings.ToUpper(FromSPKI(nil).String()))
	f.Add("")
	f.Add(strings.Repeat("0", 64))
	f.Fuzz(func(t *testing.T, s string) {
		id, err := Parse(s)
		if err != nil {
			return
		}
		if id.String() != s {
			t.Fatalf("Parse accepted %q, which is not the canonical %q", s, id.String())
		}
	})
}

func BenchmarkFromPublicKey(b *testing.B) {
	suite, _ := sigalg.Lookup("ml-dsa-65")
	key, _ := suite.GenerateKey(rand.Reader)
	for b.Loop() {
		if _, err := FromPublicKey(key.Public()); err != nil {
			b.Fatal(err)
		}
	}
}

func TestProofMessageSeparatesFields(t *testing.T) {
	id := FromSPKI([]byte("k"))
	a := ProofMessage(FactoryProofContext, []byte("nonce"), id)
	if !bytes.HasPrefix(a, []byte(FactoryProofContext+"\x00\x00\x05nonce")) || !bytes.HasSuffix(a, id[:]) {
		t.Fatalf("layout: %q", a)
	}
	// Moving a byte between nonce and context must change the message.
	if bytes.Equal(ProofMessage("ab", []byte("c"), id), ProofMessage("a", []byte("bc"), id)) {
		t.Fatal("context and nonce are not separated")
	}
	other := id
	other[0] ^= 1
	if bytes.Equal(a, ProofMessage(FactoryProofContext, []byte("nonce"), other)) {
		t.Fatal("identity not bound")
	}
}
