package migration_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/migration"
	"github.com/hallmark-iot/hallmark/internal/sealing"
)

// The platform seals under the info the chip opens with, and not the
// factory's.
func TestKeyWrapInfo(t *testing.T) {
	if migration.KeyWrapInfo != device.MigrationKeyInfo || migration.KeyWrapInfo == sealing.WrapInfo {
		t.Fatalf("KeyWrapInfo %q, device %q, factory %q", migration.KeyWrapInfo, device.MigrationKeyInfo, sealing.WrapInfo)
	}
}

func sampleChallengeRequest(t testing.TB) []byte {
	k, err := sealing.GenerateKey(sealing.DefaultKEM)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(migration.ChallengeRequest{TransportKey: sealing.MarshalPublicKey(k.Public()), TransportKeySignature: bytes.Repeat([]byte{1}, 64)})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseChallengeRequest(t *testing.T) {
	good := sampleChallengeRequest(t)
	req, err := migration.ParseChallengeRequest(good)
	if err != nil || len(req.TransportKey) == 0 || len(req.TransportKeySignature) != 64 {
		t.Fatalf("ParseChallengeRequest = %+v, %v", req, err)
	}
	for _, empty := range []string{"", " \n", "{}"} {
		if req, err := migration.ParseChallengeRequest([]byte(empty)); err != nil || req.TransportKey != nil {
			t.Errorf("%q: %+v, %v", empty, req, err)
		}
	}
	bad := map[string][]byte{
		"key without signature": []byte(`{"transport_key":"AQ=="}`),
		"signature without key": []byte(`{"transport_key_signature":"AQ=="}`),
		"key does not parse":    []byte(`{"transport_key":"AQID","transport_key_signature":"AQ=="}`),
		"unknown member":        append(bytes.TrimSuffix(good, []byte("}")), []byte(`,"x":1}`)...),
		"trailing data":         append(bytes.Clone(good), []byte(" {}")...),
		"signature too long":    []byte(`{"transport_key":"AQ==","transport_key_signature":"` + string(bytes.Repeat([]byte("A"), 8000)) + `"}`),
		"not an object":         []byte(`[]`),
	}
	for name, data := range bad {
		if _, err := migration.ParseChallengeRequest(data); !errors.Is(err, migration.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	if _, err := migration.ParseChallengeRequest(bytes.Repeat([]byte(" "), migration.MaxChallengeRequest+1)); !errors.Is(err, migration.ErrTooLarge) {
		t.Errorf("oversized: %v, want ErrTooLarge", err)
	}
}

func TestSealedKeyIdentity(t *testing.T) {
	nonce := append(bytes.Repeat([]byte{7}, 32), bytes.Repeat([]byte{9}, 32)...)
	id, ok := migration.ChallengeResponse{Nonce: nonce, SealedKey: []byte{1}}.SealedKeyIdentity()
	if !ok || id[0] != 9 || id[31] != 9 {
		t.Fatalf("SealedKeyIdentity = %x, %v", id, ok)
	}
	if _, ok := (migration.ChallengeResponse{Nonce: nonce}).SealedKeyIdentity(); ok {
		t.Error("a challenge without a sealed key names one")
	}
	if _, ok := (migration.ChallengeResponse{Nonce: nonce[:32], SealedKey: []byte{1}}).SealedKeyIdentity(); ok {
		t.Error("a 32-byte nonce names a key")
	}
}

// FuzzParseChallengeRequest: anything accepted re-encodes to a request
// that parses to the same fields, and nothing panics.
func FuzzParseChallengeRequest(f *testing.F) {
	f.Add(sampleChallengeRequest(f))
	f.Add([]byte(`{}`))
	f.Add([]byte(``))
	f.Add([]byte(`{"transport_key":"AQ==","transport_key_signature":"AQ=="}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := migration.ParseChallengeRequest(data)
		if err != nil {
			return
		}
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		req2, err := migration.ParseChallengeRequest(again)
		if err != nil || !bytes.Equal(req.TransportKey, req2.TransportKey) || !bytes.Equal(req.TransportKeySignature, req2.TransportKeySignature) {
			t.Fatalf("re-encoded %q: %+v, %v", again, req2, err)
		}
	})
}
