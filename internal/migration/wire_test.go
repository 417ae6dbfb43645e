package migration_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/continuity"
	"github.com/hallmark-iot/hallmark/internal/migration"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/sigalg/sigalgtest"
)

func sampleRequest(t testing.TB) []byte {
	ch := continuity.Challenge{Nonce: bytes.Repeat([]byte{7}, 32), ServerName: "hallmark.example"}
	ch.ID[0] = 1
	p, err := continuity.Sign(ch, sigalgtest.DeriveNamed(t, sigalg.ECDSAP256, "old", 0), sigalgtest.DeriveNamed(t, sigalg.MLDSA65, "new", 0))
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(migration.Request{ChallengeID: "01000000000000000000000000000000", Proof: p, CSR: []byte("csr")})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseRequest(t *testing.T) {
	good := sampleRequest(t)
	req, err := migration.ParseRequest(good)
	if err != nil || req.Proof.NewAlgorithm != sigalg.MLDSA65 || string(req.CSR) != "csr" {
		t.Fatalf("ParseRequest = %+v, %v", req, err)
	}
	bad := map[string][]byte{
		"other challenge id": bytes.Replace(good, []byte(`"challenge_id":"01000000000000000000000000000000","proof"`), []byte(`"challenge_id":"02000000000000000000000000000000","proof"`), 1),
		"unknown member":     append(bytes.TrimSuffix(good, []byte("}")), []byte(`,"x":1}`)...),
		"trailing data":      append(bytes.Clone(good), []byte(" {}")...),
		"no proof":           []byte(`{"challenge_id":"01000000000000000000000000000000","csr":"AQ=="}`),
		"uppercase id":       []byte(`{"challenge_id":"0A000000000000000000000000000000","proof":null,"csr":"AQ=="}`),
		"empty":              nil,
	}
	for name, data := range bad {
		if _, err := migration.ParseRequest(data); !errors.Is(err, migration.ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
	if _, err := migration.ParseRequest(make([]byte, migration.MaxRequestBody+1)); !errors.Is(err, migration.ErrTooLarge) {
		t.Errorf("oversized: err = %v", err)
	}
}

// FuzzParseRequest: no input panics; anything accepted satisfies the
// request's rules and re-encodes to a request that parses the same.
func FuzzParseRequest(f *testing.F) {
	f.Add(sampleRequest(f))
	f.Add([]byte(`{"challenge_id":"01000000000000000000000000000000","proof":{},"csr":"AQ=="}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := migration.ParseRequest(data)
		if err != nil {
			return
		}
		if err := req.Check(); err != nil {
			t.Fatalf("accepted a request that fails its rules: %v", err)
		}
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		req2, err := migration.ParseRequest(again)
		if err != nil {
			t.Fatalf("re-encoded request refused: %v", err)
		}
		a, _ := json.Marshal(req2)
		if !bytes.Equal(a, again) {
			t.Fatal("re-encoding changed the request")
		}
	})
}

func TestCSRBindingSeparates(t *testing.T) {
	ch := continuity.Challenge{Nonce: bytes.Repeat([]byte{7}, 32), ServerName: "a"}
	other := ch
	other.ServerName = "b"
	var id1, id2 [32]byte
	id2[0] = 1
	if migration.CSRBinding(ch, id1) == migration.CSRBinding(other, id1) || migration.CSRBinding(ch, id1) == migration.CSRBinding(ch, id2) {
		t.Fatal("the binding does not cover the server name and the new identity")
	}
}
