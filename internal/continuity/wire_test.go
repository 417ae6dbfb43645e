package continuity_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/continuity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

func TestWireRoundTrip(t *testing.T) {
	for _, pair := range [][2]sigalg.ID{{sigalg.ECDSAP256, sigalg.MLDSA87}, {sigalg.Ed25519, sigalg.MLDSA65}} {
		d := newDevice(t, "wire", pair[0], pair[1])
		ch := challenge(20)
		p := d.sign(t, ch)
		data, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > continuity.MaxProofSize {
			t.Fatalf("%s→%s proof encodes to %d bytes, over MaxProofSize", pair[0], pair[1], len(data))
		}
		got, err := continuity.ParseProof(data)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, p) {
			t.Fatal("parsed proof differs from the one encoded")
		}
		var viaJSON continuity.Proof
		if err := json.Unmarshal(data, &viaJSON); err != nil || !reflect.DeepEqual(&viaJSON, p) {
			t.Fatalf("json.Unmarshal: %v", err)
		}
		read, err := continuity.ReadProof(bytes.NewReader(data))
		if err != nil || !reflect.DeepEqual(read, p) {
			t.Fatalf("ReadProof: %v", err)
		}
		if _, err := continuity.Verify(got, ch, d.predecessor(t), continuity.Policy{}); err != nil {
			t.Fatalf("parsed proof does not verify: %v", err)
		}
	}
}

// TestLargestProofFits: two ML-DSA-87 signatures and an ML-DSA-87 key, the
// largest proof any policy can accept, stay under MaxProofSize.
func TestLargestProofFits(t *testing.T) {
	d := newDevice(t, "largest", sigalg.MLDSA87, sigalg.MLDSA87)
	data, err := json.Marshal(d.sign(t, challenge(21)))
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > continuity.MaxProofSize {
		t.Fatalf("%d bytes, MaxProofSize %d", len(data), continuity.MaxProofSize)
	}
	if _, err := continuity.ParseProof(data); err != nil {
		t.Fatal(err)
	}
}

// validJSON returns a valid proof's members, for tests to spoil one by one.
func validJSON(t *testing.T) map[string]string {
	t.Helper()
	d := newDevice(t, "wire", sigalg.Ed25519, sigalg.MLDSA65)
	data, err := json.Marshal(d.sign(t, challenge(22)))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func encode(t *testing.T, m map[string]string) string {
	t.Helper()
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestParseProofRefuses(t *testing.T) {
	valid := validJSON(t)
	with := func(name, value string) string {
		m := map[string]string{}
		for k, v := range valid {
			m[k] = v
		}
		m[name] = value
		return encode(t, m)
	}
	without := func(name string) string {
		m := map[string]string{}
		for k, v := range valid {
			if k != name {
				m[k] = v
			}
		}
		return encode(t, m)
	}
	good := encode(t, valid)
	body := strings.TrimSuffix(good, "}")
	sig := valid["old_signature"]
	// The new key is derived from a fixed seed, so its encoding is fixed;
	// the base64url case is a refusal only if it has a character to change.
	if !strings.ContainsAny(valid["new_public_key"], "+/") {
		t.Fatal("the new key's base64 has no character that base64url spells differently")
	}
	tests := map[string]string{
		"empty":                           "",
		"an array":                        "[" + good + "]",
		"null":                            "null",
		"unknown member":                  with("extra", "x"),
		"repeated member":                 body + `,"old_algorithm":"ed25519"}`,
		"member in another case":          strings.Replace(good, `"challenge_id"`, `"Challenge_ID"`, 1),
		"missing member":                  without("new_signature"),
		"a number":                        body + `,"n":1}`,
		"a null member":                   strings.Replace(good, `"old_algorithm":"ed25519"`, `"old_algorithm":null`, 1),
		"an object member":                strings.Replace(good, `"old_algorithm":"ed25519"`, `"old_algorithm":{}`, 1),
		"trailing object":                 good + "{}",
		"trailing garbage":                good + "x",
		"truncated":                       good[:len(good)-1],
		"uppercase challenge ID":          with("challenge_id", strings.ToUpper(valid["challenge_id"])),
		"short challenge ID":              with("challenge_id", valid["challenge_id"][2:]),
		"uppercase identity":              with("old_identity", strings.ToUpper(valid["old_identity"])),
		"unpadded base64":                 with("old_signature", strings.TrimRight(sig, "=")),
		"base64 with a line break":        with("old_signature", sig[:4]+"\n"+sig[4:]),
		"base64url":                       with("new_public_key", strings.NewReplacer("+", "-", "/", "_").Replace(valid["new_public_key"])),
		"algorithm alias":                 with("new_algorithm", "mldsa65"),
		"unknown algorithm":               with("old_algorithm", "rsa"),
		"signature over its suite's size": with("old_signature", valid["new_signature"]),
		"signature over MaxSignature":     with("new_signature", strings.Repeat("AAAA", 2000)),
		"empty signature":                 with("new_signature", ""),
	}
	for name, input := range tests {
		t.Run(name, func(t *testing.T) {
			if input == good {
				t.Fatal("test input is the valid proof")
			}
			p, err := continuity.ParseProof([]byte(input))
			if !errors.Is(err, continuity.ErrMalformed) || p != nil {
				t.Fatalf("err = %v, want ErrMalformed and no proof", err)
			}
			var q continuity.Proof
			if json.Unmarshal([]byte(input), &q) == nil {
				t.Fatal("json.Unmarshal accepted it")
			}
		})
	}
}

func TestParseProofTooLarge(t *testing.T) {
	padded := encode(t, validJSON(t)) + strings.Repeat(" ", continuity.MaxProofSize)
	if _, err := continuity.ParseProof([]byte(padded)); !errors.Is(err, continuity.ErrTooLarge) {
		t.Fatalf("ParseProof: err = %v, want ErrTooLarge", err)
	}
	if _, err := continuity.ReadProof(strings.NewReader(padded)); !errors.Is(err, continuity.ErrTooLarge) {
		t.Fatalf("ReadProof: err = %v, want ErrTooLarge", err)
	}
	// Whitespace within the limit is JSON and is accepted.
	spaced := " " + encode(t, validJSON(t)) + "\n"
	if _, err := continuity.ParseProof([]byte(spaced)); err != nil {
		t.Fatalf("whitespace around the object: %v", err)
	}
}
