package continuity_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/continuity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// fuzzDevice and fuzzChallenge are fixed, so that the valid proof in the
// seed corpus (testdata/fuzz/FuzzParseProof/valid-ed25519-ml-dsa-65)
// verifies on every run.
func fuzzDevice(t testing.TB) device { return newDevice(t, "fuzz", sigalg.Ed25519, sigalg.MLDSA65) }

var fuzzChallenge = challenge(42)

// FuzzParseProof: whatever the input, ParseProof refuses it with one of
// its errors or returns a proof that re-encodes to a proof equal to it;
// Verify never panics on a parsed proof, and only the device's own new key
// can come out of it.
func FuzzParseProof(f *testing.F) {
	d := fuzzDevice(f)
	fresh, err := json.Marshal(d.sign(f, fuzzChallenge))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(fresh)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"challenge_id":"00","challenge_id":"00"}`))
	f.Add([]byte(strings.Replace(string(fresh), `"challenge_id"`, `"CHALLENGE_ID"`, 1)))
	pred := d.predecessor(f)
	wantNew := d.sign(f, fuzzChallenge).NewIdentity
	allowAll := continuity.Policy{Allowed: func(from, to sigalg.ID) bool { return true }}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := continuity.ParseProof(data)
		if err != nil {
			if p != nil || !errors.Is(err, continuity.ErrMalformed) && !errors.Is(err, continuity.ErrTooLarge) {
				t.Fatalf("refusal %v with proof %v", err, p != nil)
			}
			return
		}
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		q, err := continuity.ParseProof(again)
		if err != nil || !reflect.DeepEqual(p, q) {
			t.Fatalf("re-encoded proof: %v", err)
		}
		succ, err := continuity.Verify(p, fuzzChallenge, pred, allowAll)
		if err == nil && succ.Identity != wantNew {
			t.Fatalf("verified a migration to %s", succ.Identity.Short())
		}
	})
}

// TestSeedCorpusValidProof keeps the corpus's valid proof valid: a change
// of the message layout that left it stale would leave the fuzzer without
// a seed that reaches the end of Verify.
func TestSeedCorpusValidProof(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzParseProof", "valid-ed25519-ml-dsa-65"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(raw), "\n", 3)
	if len(lines) < 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") {
		t.Fatal("not a go test fuzz v1 file of one []byte")
	}
	data, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := continuity.ParseProof([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	d := fuzzDevice(t)
	if _, err := continuity.Verify(p, fuzzChallenge, d.predecessor(t), continuity.Policy{}); err != nil {
		t.Fatalf("the corpus's valid proof no longer verifies: %v", err)
	}
}
