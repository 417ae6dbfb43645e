package sealing

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"testing"
)

// TestKWPRFC5649 checks the two examples of RFC 5649 section 6, both under
// the same 192-bit KEK: 20 bytes of key data (padded to 24, so the six
// RFC 3394 rounds run) and 7 bytes (one padded semiblock, the single
// AES-block case). Source: RFC 5649, "Advanced Encryption Standard (AES)
// Key Wrap with Padding Algorithm", section 6 (Padded Key Wrap Examples),
// https://www.rfc-editor.org/rfc/rfc5649#section-6.
func TestKWPRFC5649(t *testing.T) {
	kek := unhex(t, "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8")
	for _, tc := range []struct{ key, wrap string }{
		{"c37b7e6492584340bed12207808941155068f738", "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a"},
		{"466f7250617369", "afbeb0f07dfbf5419200f2ccb50bb24f"},
	} {
		key, want := unhex(t, tc.key), unhex(t, tc.wrap)
		got, err := KWPWrap(kek, key)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("wrap %s = %x, %v; want %x", tc.key, got, err, want)
		}
		back, err := KWPUnwrap(kek, want)
		if err != nil || !bytes.Equal(back, key) {
			t.Errorf("unwrap %s = %x, %v; want %x", tc.wrap, back, err, key)
		}
	}
}

// wycheproofKeywrap is the schema of Wycheproof's keywrap_test_schema_v1:
// key is the KEK, msg the key data, ct its wrapping.
type wycheproofKeywrap struct {
	Algorithm     string `json:"algorithm"`
	NumberOfTests int    `json:"numberOfTests"`
	TestGroups    []struct {
		KeySize int `json:"keySize"`
		Tests   []struct {
			TcID    int      `json:"tcId"`
			Comment string   `json:"comment"`
			Flags   []string `json:"flags"`
			Key     string   `json:"key"`
			Msg     string   `json:"msg"`
			CT      string   `json:"ct"`
			Result  string   `json:"result"`
		} `json:"tests"`
	} `json:"testGroups"`
}

// TestKWPWycheproof runs Wycheproof's 254 AES-KWP cases (testdata/README.md):
// every valid case wraps to exactly its ciphertext and unwraps back, and
// every invalid one (modified padding, a wrong length in the integrity
// value, wrong-size ciphertexts, the empty key) is refused with
// ErrKeyUnwrap and nothing else.
func TestKWPWycheproof(t *testing.T) {
	data, err := os.ReadFile("testdata/aes_kwp_test.json")
	if err != nil {
		t.Fatal(err)
	}
	var v wycheproofKeywrap
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	if v.Algorithm != "AES-KWP" {
		t.Fatalf("algorithm %q", v.Algorithm)
	}
	valid, invalid := 0, 0
	for _, g := range v.TestGroups {
		for _, tc := range g.Tests {
			kek, msg, ct := unhex(t, tc.Key), unhex(t, tc.Msg), unhex(t, tc.CT)
			got, err := KWPUnwrap(kek, ct)
			switch tc.Result {
			case "valid":
				valid++
				if err != nil || !bytes.Equal(got, msg) {
					t.Errorf("tcId %d (%s): unwrap = %x, %v; want %x", tc.TcID, tc.Comment, got, err, msg)
				}
				wrapped, err := KWPWrap(kek, msg)
				if err != nil || !bytes.Equal(wrapped, ct) {
					t.Errorf("tcId %d (%s): wrap = %x, %v; want %x", tc.TcID, tc.Comment, wrapped, err, ct)
				}
			case "invalid":
				invalid++
				if !errors.Is(err, ErrKeyUnwrap) || got != nil {
					t.Errorf("tcId %d (%s, %v): unwrap = %x, %v; want ErrKeyUnwrap", tc.TcID, tc.Comment, tc.Flags, got, err)
				}
			default:
				t.Fatalf("tcId %d: result %q", tc.TcID, tc.Result)
			}
		}
	}
	if valid+invalid != v.NumberOfTests || valid == 0 || invalid == 0 {
		t.Fatalf("checked %d valid and %d invalid of %d", valid, invalid, v.NumberOfTests)
	}
}

// TestKWPRefusals covers what the vectors do not: every length of plaintext
// from 1 to 40 bytes round-trips (both code paths and every padding
// length), any single flipped bit anywhere is refused, a wrong KEK is
// refused, and input of the wrong size is refused before any work.
func TestKWPRefusals(t *testing.T) {
	kek := bytes.Repeat([]byte{0x42}, 32)
	other := bytes.Repeat([]byte{0x43}, 32)
	for n := 1; n <= 40; n++ {
		msg := bytes.Repeat([]byte{byte(n)}, n)
		w, err := KWPWrap(kek, msg)
		if err != nil {
			t.Fatal(err)
		}
		if want := 8 + (n+7)/8*8; len(w) != want {
			t.Fatalf("%d bytes wrap to %d, want %d", n, len(w), want)
		}
		if got, err := KWPUnwrap(kek, w); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("%d bytes: %x, %v", n, got, err)
		}
		for i := range len(w) * 8 {
			bad := bytes.Clone(w)
			bad[i/8] ^= 1 << (i % 8)
			if _, err := KWPUnwrap(kek, bad); !errors.Is(err, ErrKeyUnwrap) {
				t.Fatalf("%d bytes, bit %d flipped: %v", n, i, err)
			}
		}
		if _, err := KWPUnwrap(other, w); !errors.Is(err, ErrKeyUnwrap) {
			t.Fatalf("%d bytes under another KEK: %v", n, err)
		}
	}
	for _, size := range []int{0, 8, 15, 17, 23, 8 + MaxKWPPlaintext + 16} {
		if _, err := KWPUnwrap(kek, make([]byte, size)); !errors.Is(err, ErrKeyUnwrap) {
			t.Errorf("%d bytes of input: %v", size, err)
		}
	}
	for _, size := range []int{0, MaxKWPPlaintext + 1} {
		if _, err := KWPWrap(kek, make([]byte, size)); err == nil {
			t.Errorf("wrapped %d bytes", size)
		}
	}
	if _, err := KWPWrap(kek[:20], []byte("k")); err == nil || errors.Is(err, ErrKeyUnwrap) {
		t.Errorf("a 20-byte KEK: %v", err)
	}
	if _, err := KWPUnwrap(kek[:20], make([]byte, 16)); err == nil || errors.Is(err, ErrKeyUnwrap) {
		t.Errorf("unwrap under a 20-byte KEK: %v, want an error about the KEK", err)
	}
}

// FuzzKWPUnwrap feeds arbitrary data to the unwrapper under a fixed KEK.
// Wrapping is a strong pseudo-random permutation with a 32-bit check, so a
// forgery is out of the fuzzer's reach: whatever unwraps must wrap back to
// exactly the input.
func FuzzKWPUnwrap(f *testing.F) {
	kek := bytes.Repeat([]byte{7}, 32)
	for _, n := range []int{1, 7, 8, 9, 20, 121} {
		w, err := KWPWrap(kek, bytes.Repeat([]byte{0xa5}, n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(w)
		f.Add(w[:len(w)-8])
	}
	f.Add([]byte{})
	f.Add(make([]byte, 16))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := KWPUnwrap(kek, data)
		if err != nil {
			if !errors.Is(err, ErrKeyUnwrap) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		again, err := KWPWrap(kek, got)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("unwrapped %x from data that does not wrap back (%v)", got, err)
		}
	})
}
