package tpm_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/tpm"
	"github.com/hallmark-iot/hallmark/internal/tpm/tpmtest"
)

func TestKeyInTPMSignsProofsThePlatformVerifies(t *testing.T) {
	ctx := context.Background()
	sim := tpmtest.Start(t)
	tp := sim.Open(t)
	key, blob, err := tp.CreateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	suite, err := sigalg.SuiteOf(key)
	if err != nil || suite.ID() != sigalg.ECDSAP256 {
		t.Fatalf("suite of a TPM key = %v, %v; want %s", suite, err, sigalg.ECDSAP256)
	}
	id, err := identity.FromPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	nonce := []byte("station nonce of thirty-two byte")
	msg := identity.ProofMessage(identity.FactoryProofContext, nonce, id)
	proof, err := suite.Sign(key, msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := suite.Verify(key.Public(), msg, proof); err != nil {
		t.Fatalf("the platform's verifier refuses the TPM's proof: %v", err)
	}
	if err := suite.Verify(key.Public(), append(msg, 0), proof); err == nil {
		t.Fatal("a proof verifies over another message")
	}

	// The blob loads again, in a new process as it were, and signs with the
	// same key; a second key is a different key.
	again, err := tp.LoadKey(ctx, blob)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Public().(*ecdsa.PublicKey).Equal(key.Public()) {
		t.Fatal("the reloaded key is another key")
	}
	other, _, err := tp.CreateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if other.Public().(*ecdsa.PublicKey).Equal(key.Public()) {
		t.Fatal("two keys created in the TPM are equal")
	}

	// TLS asks for SHA-384 and SHA-512 digests too.
	for _, h := range []crypto.Hash{crypto.SHA384, crypto.SHA512} {
		d := h.New()
		d.Write(msg)
		sig, err := key.Sign(rand.Reader, d.Sum(nil), h)
		if err != nil {
			t.Fatalf("%v: %v", h, err)
		}
		if !ecdsa.VerifyASN1(key.Public().(*ecdsa.PublicKey), d.Sum(nil), sig) {
			t.Fatalf("%v signature does not verify", h)
		}
	}
	if _, err := key.Sign(rand.Reader, make([]byte, 20), crypto.SHA1); err == nil {
		t.Fatal("SHA-1 signature accepted")
	}
}

// A blob holds no secret that works anywhere else: another TPM (another
// owner seed, so another SRK) cannot load it, nor can anyone load an
// altered one.
func TestBlobOpensOnlyInItsTPM(t *testing.T) {
	ctx := context.Background()
	first, second := tpmtest.Start(t).Open(t), tpmtest.Start(t).Open(t)
	_, blob, err := first.CreateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := second.LoadKey(ctx, blob); !errors.Is(err, tpm.ErrWrongTPM) {
		t.Fatalf("another TPM loaded the blob: %v", err)
	}
	tampered := tpm.KeyBlob{Public: blob.Public, Private: bytes.Clone(blob.Private)}
	tampered.Private[len(tampered.Private)-1] ^= 1
	if _, err := first.LoadKey(ctx, tampered); !errors.Is(err, tpm.ErrWrongTPM) {
		t.Fatalf("altered private area loaded: %v", err)
	}
}

func TestParseKeyBlobRefusesExportableOrForeignKeys(t *testing.T) {
	ctx := context.Background()
	_, blob, err := tpmtest.Start(t).Open(t).CreateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tpm.ParseKeyBlob(blob); err != nil {
		t.Fatalf("a blob the TPM made: %v", err)
	}
	// The object attributes are bytes 6..9 of TPM2B_PUBLIC (size, type,
	// nameAlg, attributes); fixedTPM is bit 1.
	exportable := tpm.KeyBlob{Public: bytes.Clone(blob.Public), Private: blob.Private}
	exportable.Public[9] &^= 1 << 1
	if _, err := tpm.ParseKeyBlob(exportable); !errors.Is(err, tpm.ErrKeyBlob) {
		t.Fatalf("a key without fixedTPM: %v", err)
	}
	for name, b := range map[string]tpm.KeyBlob{
		"empty":    {},
		"trailing": {Public: append(bytes.Clone(blob.Public), 0), Private: blob.Private},
		"short":    {Public: blob.Public[:10], Private: blob.Private},
	} {
		if _, err := tpm.ParseKeyBlob(b); !errors.Is(err, tpm.ErrKeyBlob) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestUnreachableTPM(t *testing.T) {
	addr, err := tpm.ParseAddress("tcp://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tpm.Open(context.Background(), addr); !errors.Is(err, tpm.ErrUnreachable) {
		t.Fatalf("Open of a closed port: %v", err)
	}
}

func TestParseAddress(t *testing.T) {
	for in, want := range map[string]tpm.Address{
		"/dev/tpmrm0":            {Kind: tpm.Device, Target: "/dev/tpmrm0"},
		"tcp://127.0.0.1:2321":   {Kind: tpm.TCP, Target: "127.0.0.1:2321"},
		"tcp://[::1]:2321":       {Kind: tpm.TCP, Target: "[::1]:2321"},
		"unix:///run/swtpm/sock": {Kind: tpm.Unix, Target: "/run/swtpm/sock"},
	} {
		got, err := tpm.ParseAddress(in)
		if err != nil || got != want {
			t.Errorf("ParseAddress(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if got.String() != in {
			t.Errorf("%q prints as %q", in, got.String())
		}
	}
	for _, in := range []string{"", "tpmrm0", "tcp://127.0.0.1", "tcp://:2321", "tcp://h:0", "tcp://h:65536",
		"unix://relative", "http://127.0.0.1:2321", "/dev/tpm\x00"} {
		if _, err := tpm.ParseAddress(in); !errors.Is(err, tpm.ErrAddress) {
			t.Errorf("ParseAddress(%q) = %v, want ErrAddress", in, err)
		}
	}
}
