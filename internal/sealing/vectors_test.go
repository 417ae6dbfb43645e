package sealing

import (
	"bytes"
	"crypto/hpke"
	"crypto/mlkem"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"
)

// wycheproofMLKEM is the schema of Wycheproof's mlkem_test_schema.json:
// seed is FIPS 203's d || z, ek the encapsulation key it expands to, c a
// ciphertext and K the shared key Decaps(seed, c) must return. Invalid
// cases have a seed or ciphertext of the wrong length and no ek or K.
type wycheproofMLKEM struct {
	NumberOfTests int `json:"numberOfTests"`
	TestGroups    []struct {
		ParameterSet string `json:"parameterSet"`
		Tests        []struct {
			TcID    int    `json:"tcId"`
			Comment string `json:"comment"`
			Seed    string `json:"seed"`
			EK      string `json:"ek"`
			C       string `json:"c"`
			K       string `json:"K"`
			Result  string `json:"result"`
		} `json:"tests"`
	} `json:"testGroups"`
}

// TestMLKEM768Wycheproof checks crypto/mlkem's ML-KEM-768, the foundation
// of two of the three KEMs, against Wycheproof: key expansion from the
// seed, decapsulation (including implicit rejection of modified
// ciphertexts), and refusal of wrong-length seeds and ciphertexts. It also
// checks that HPKE's and Hallmark's private key encoding of ML-KEM-768 is
// that same FIPS 203 seed.
func TestMLKEM768Wycheproof(t *testing.T) {
	data, err := os.ReadFile("testdata/mlkem_768_test.json")
	if err != nil {
		t.Fatal(err)
	}
	var v wycheproofMLKEM
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, g := range v.TestGroups {
		if g.ParameterSet != "ML-KEM-768" {
			t.Fatalf("parameter set %q", g.ParameterSet)
		}
		for _, tc := range g.Tests {
			checked++
			seed, c, k, ek := unhex(t, tc.Seed), unhex(t, tc.C), unhex(t, tc.K), unhex(t, tc.EK)
			got, err := decapsulate768(seed, c, ek)
			switch tc.Result {
			case "valid":
				if err != nil || !bytes.Equal(got, k) {
					t.Errorf("tcId %d (%s): K = %x, %v; want %x", tc.TcID, tc.Comment, got, err, k)
				}
				checkHPKESeedEncoding(t, tc.TcID, seed, ek)
			case "invalid":
				if err == nil {
					t.Errorf("tcId %d (%s): invalid case decapsulated", tc.TcID, tc.Comment)
				}
			default:
				t.Fatalf("tcId %d: result %q", tc.TcID, tc.Result)
			}
		}
	}
	if checked != v.NumberOfTests || checked < 190 {
		t.Fatalf("checked %d cases, file declares %d", checked, v.NumberOfTests)
	}
}

// decapsulate768 expands seed, checks that it yields the encapsulation key
// wantEK when the vector gives one, and decapsulates c.
func decapsulate768(seed, c, wantEK []byte) ([]byte, error) {
	dk, err := mlkem.NewDecapsulationKey768(seed)
	if err != nil {
		return nil, err
	}
	if len(wantEK) != 0 && !bytes.Equal(dk.EncapsulationKey().Bytes(), wantEK) {
		return nil, errMismatch
	}
	return dk.Decapsulate(c)
}

var errMismatch = errors.New("encapsulation key differs from the vector's")

func checkHPKESeedEncoding(t *testing.T, tcID int, seed, ek []byte) {
	t.Helper()
	hk, err := hpke.MLKEM768().NewPrivateKey(seed)
	if err != nil || !bytes.Equal(hk.PublicKey().Bytes(), ek) {
		t.Errorf("tcId %d: crypto/hpke ML-KEM-768 key from the seed: %v", tcID, err)
		return
	}
	encoded := []byte{keyFormatVersion, kindPrivate, 0, 0}
	binary.BigEndian.PutUint16(encoded[2:], MLKEM768.ID())
	priv, err := ParsePrivateKey(append(encoded, seed...))
	if err != nil {
		t.Errorf("tcId %d: ParsePrivateKey: %v", tcID, err)
		return
	}
	if !bytes.Equal(priv.Public().key.Bytes(), ek) {
		t.Errorf("tcId %d: Hallmark key from the seed has another public key", tcID)
	}
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex in vector: %v", err)
	}
	return b
}
