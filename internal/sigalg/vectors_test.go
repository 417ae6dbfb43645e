package sigalg

import (
	"crypto"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

// The vector files and their sources are listed in testdata/README.md.

func readJSON(t *testing.T, name string, v any) {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", name, err)
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

type wycheproofVerify struct {
	TestGroups []struct {
		PublicKeyDER string `json:"publicKeyDer"`
		Tests        []struct {
			TcID    json.Number `json:"tcId"`
			Comment string      `json:"comment"`
			Msg     string      `json:"msg"`
			Ctx     *string     `json:"ctx"`
			Sig     string      `json:"sig"`
			Result  string      `json:"result"`
			Flags   []string    `json:"flags"`
		} `json:"tests"`
	} `json:"testGroups"`
}

// runWycheproofVerify checks every case: "valid" must verify, "invalid" must
// not, "acceptable" may go either way. A group whose key does not parse must
// hold only invalid cases, or be flagged ZeroPublicKey: such a key (t1 = 0)
// is a valid key to FIPS 204, which Hallmark's key policy refuses because
// anyone can sign for it; its cases still check the verification algorithm,
// under the key as circl reads it. It returns how many cases were checked.
func runWycheproofVerify(t *testing.T, file string, id ID) int {
	var v wycheproofVerify
	readJSON(t, file, &v)
	s := mustSuite(t, id)
	checked := 0
	for _, g := range v.TestGroups {
		pub, keyErr := ParsePublicKey(unhex(t, g.PublicKeyDER))
		for _, tc := range g.Tests {
			if tc.Ctx != nil && *tc.Ctx != "" {
				// Hallmark signs with the empty context only (RFC 9881).
				continue
			}
			checked++
			if keyErr != nil && slices.Contains(tc.Flags, "ZeroPublicKey") {
				if !errors.Is(keyErr, ErrWeakKey) {
					t.Errorf("%s tc %s: zero public key refused with %v, want ErrWeakKey", file, tc.TcID, keyErr)
				}
				pub = policyFreeMLDSAKey(t, s, g.PublicKeyDER)
			} else if keyErr != nil {
				if tc.Result == "valid" {
					t.Errorf("%s tc %s: key refused (%v) but the case is valid", file, tc.TcID, keyErr)
				}
				continue
			}
			err := s.Verify(pub, unhex(t, tc.Msg), unhex(t, tc.Sig))
			switch {
			case tc.Result == "valid" && err != nil:
				t.Errorf("%s tc %s (%s): valid signature refused: %v", file, tc.TcID, tc.Comment, err)
			case tc.Result == "invalid" && err == nil:
				t.Errorf("%s tc %s (%s): invalid signature accepted", file, tc.TcID, tc.Comment)
			case err != nil && !errors.Is(err, ErrInvalidSignature):
				t.Errorf("%s tc %s: error %v does not wrap ErrInvalidSignature", file, tc.TcID, err)
			}
		}
	}
	return checked
}

// policyFreeMLDSAKey reads an ML-DSA SubjectPublicKeyInfo with circl alone,
// past the key policy, so that vectors of refused keys still exercise
// verification.
func policyFreeMLDSAKey(t *testing.T, s Suite, spkiHex string) crypto.PublicKey {
	t.Helper()
	var spki subjectPublicKeyInfo
	if _, err := asn1.Unmarshal(unhex(t, spkiHex), &spki); err != nil {
		t.Fatal(err)
	}
	pk, err := s.(*mldsaSuite).scheme.UnmarshalBinaryPublicKey(spki.PublicKey.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return pk
}

func TestWycheproofECDSAP256(t *testing.T) {
	if n := runWycheproofVerify(t, "ecdsa_secp256r1_sha256_test.json", ECDSAP256); n < 400 {
		t.Fatalf("only %d cases checked", n)
	}
}

func TestWycheproofEd25519(t *testing.T) {
	if n := runWycheproofVerify(t, "ed25519_test.json", Ed25519); n < 100 {
		t.Fatalf("only %d cases checked", n)
	}
}

func TestWycheproofMLDSA65Verify(t *testing.T) {
	if n := runWycheproofVerify(t, "mldsa_65_verify_test.json", MLDSA65); n < 150 {
		t.Fatalf("only %d cases checked", n)
	}
}

// TestWycheproofMLDSA65SignSeed checks key generation from seed, the PKCS #8
// seed form and deterministic signatures against Wycheproof.
func TestWycheproofMLDSA65SignSeed(t *testing.T) {
	var v struct {
		TestGroups []struct {
			PrivateSeed     string `json:"privateSeed"`
			PrivateKeyPkcs8 string `json:"privateKeyPkcs8"`
			PublicKey       string `json:"publicKey"`
			Tests           []struct {
				TcID   json.Number `json:"tcId"`
				Msg    *string     `json:"msg"`
				Ctx    *string     `json:"ctx"`
				Rnd    *string     `json:"rnd"`
				Sig    string      `json:"sig"`
				Result string      `json:"result"`
			} `json:"tests"`
		} `json:"testGroups"`
	}
	readJSON(t, "mldsa_65_sign_seed_test.json", &v)
	m := mustSuite(t, MLDSA65).(*mldsaSuite)
	keys, sigs := 0, 0
	for _, g := range v.TestGroups {
		seed := unhex(t, g.PrivateSeed)
		if len(seed) != SeedSize {
			if _, err := ParsePrivateKey(unhex(t, g.PrivateKeyPkcs8)); !errors.Is(err, ErrMalformedKey) {
				t.Errorf("PKCS #8 with a %d-byte seed: %v, want ErrMalformedKey", len(seed), err)
			}
			continue
		}
		key, err := m.DeriveKey(seed)
		if err != nil {
			t.Fatalf("seed %s: %v", g.PrivateSeed, err)
		}
		if g.PrivateKeyPkcs8 != "" {
			// Hallmark must write the same PKCS #8 bytes as the vector and
			// read them back.
			der, _ := MarshalPrivateKey(key)
			if got := hex.EncodeToString(der); got != strings.ToLower(g.PrivateKeyPkcs8) {
				t.Errorf("seed %s: PKCS #8 %s, want %s", g.PrivateSeed, got, g.PrivateKeyPkcs8)
			}
			if _, err := ParsePrivateKey(der); err != nil {
				t.Errorf("seed %s: parse own PKCS #8: %v", g.PrivateSeed, err)
			}
		}
		pub, _ := key.Public().(interface{ MarshalBinary() ([]byte, error) }).MarshalBinary()
		if got := hex.EncodeToString(pub); got != strings.ToLower(g.PublicKey) {
			t.Fatalf("seed %s: public key mismatch", g.PrivateSeed)
		}
		keys++
		for _, tc := range g.Tests {
			if tc.Msg == nil || (tc.Ctx != nil && *tc.Ctx != "") || tc.Rnd != nil {
				continue // mu-only, context and caller-chosen randomness are not in Hallmark's API
			}
			sig, err := m.signDeterministic(key, unhex(t, *tc.Msg))
			if tc.Result == "valid" && (err != nil || hex.EncodeToString(sig) != strings.ToLower(tc.Sig)) {
				t.Errorf("tc %s: deterministic signature differs from the vector (%v)", tc.TcID, err)
			}
			sigs++
		}
	}
	if keys < 20 || sigs < 20 {
		t.Fatalf("checked only %d keys and %d signatures", keys, sigs)
	}
}

// TestMLDSAKeyGenACVP checks ML-DSA.KeyGen_internal against NIST ACVP
// FIPS 204 vectors for all three parameter sets.
func TestMLDSAKeyGenACVP(t *testing.T) {
	var v struct {
		Tests []struct {
			ParameterSet string `json:"parameterSet"`
			Seed, PK, SK string
		} `json:"tests"`
	}
	readJSON(t, "mldsa_keygen_acvp_sample.json", &v)
	seen := map[string]int{}
	for _, tc := range v.Tests {
		s := mustSuite(t, ID(strings.ToLower(tc.ParameterSet)))
		key, err := s.DeriveKey(unhex(t, tc.Seed))
		if err != nil {
			t.Fatal(err)
		}
		pk, _ := key.Public().(interface{ MarshalBinary() ([]byte, error) }).MarshalBinary()
		sk, _ := key.(interface{ MarshalBinary() ([]byte, error) }).MarshalBinary()
		if !strings.EqualFold(hex.EncodeToString(pk), tc.PK) || !strings.EqualFold(hex.EncodeToString(sk), tc.SK) {
			t.Errorf("%s seed %s: key pair differs from FIPS 204 vector", tc.ParameterSet, tc.Seed[:16])
		}
		// Every honest vector key passes the key policy.
		if err := s.(*mldsaSuite).checkPublicKey(unhex(t, tc.PK)); err != nil {
			t.Errorf("%s seed %s: vector public key refused: %v", tc.ParameterSet, tc.Seed[:16], err)
		}
		seen[tc.ParameterSet]++
	}
	for _, ps := range []string{"ML-DSA-44", "ML-DSA-65", "ML-DSA-87"} {
		if seen[ps] == 0 {
			t.Errorf("no vectors for %s", ps)
		}
	}
}

// TestCCTVEd25519Keys checks the key policy against C2SP/CCTV edge cases:
// every key with a small-order component or a non-canonical encoding is
// refused, and the one ordinary key is accepted.
func TestCCTVEd25519Keys(t *testing.T) {
	var vectors []struct {
		Key   string   `json:"key"`
		Flags []string `json:"flags"`
	}
	readJSON(t, "cctv_ed25519vectors.json", &vectors)
	weak := map[string]bool{}
	for _, v := range vectors {
		if _, ok := weak[v.Key]; !ok {
			weak[v.Key] = false
		}
		for _, f := range v.Flags {
			if f == "low_order_A" || f == "low_order_component_A" || f == "non_canonical_A" {
				weak[v.Key] = true
			}
		}
	}
	accepted, refused := 0, 0
	for keyHex, isWeak := range weak {
		spki := append(unhex(t, "302a300506032b6570032100"), unhex(t, keyHex)...)
		_, err := ParsePublicKey(spki)
		switch {
		case isWeak && err == nil:
			t.Errorf("weak key %s accepted", keyHex)
		case !isWeak && err != nil:
			t.Errorf("ordinary key %s refused: %v", keyHex, err)
		case err != nil:
			refused++
		default:
			accepted++
		}
	}
	if refused < 20 || accepted < 1 {
		t.Fatalf("refused %d, accepted %d keys", refused, accepted)
	}
}
