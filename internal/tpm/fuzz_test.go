package tpm

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/hex"
	"errors"
	"testing"
)

func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"/dev/tpmrm0", "tcp://127.0.0.1:2321", "tcp://[::1]:2321", "unix:///run/swtpm/sock", "tcp://h:0", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			if !errors.Is(err, ErrAddress) {
				t.Fatalf("error without ErrAddress: %v", err)
			}
			return
		}
		again, err := ParseAddress(a.String())
		if err != nil || again != a {
			t.Fatalf("%q parses to %+v, which prints as %q and parses to %+v, %v", s, a, a.String(), again, err)
		}
	})
}

// A P-256 signing key's blob as swtpm made it (public area, private area),
// recorded from TPM2_Create; the private area is wrapped by that
// simulator's SRK, long gone.
const (
	seedPublic  = "00560023000b0004007200000010001000030010002011d7e25cc75b3b0a2537c0350d75d1d6d15aeef9f6ae0eec013f31518eb9d43b00201b6e5b9a921a40e8623688aec0f140f21c37224297a3b45889c4bdd5bfa386fb"
	seedPrivate = "007e0020cd91e73207c32c04bda8c00f66381901849f5154592d6c55a8cb687592c5ed720010763d5949e39323d581b2d7be38a2f90a74c1f16df2cdc75658e7df276532d5660648d56b39fc94fa6c20e268497a491dd25ba1c59bd56bef20fe98183139138417ab14d45b743983bcf1624e9706a1b866eb7af82cf73d3ad43f"
)

func FuzzParseKeyBlob(f *testing.F) {
	pub, _ := hex.DecodeString(seedPublic)
	priv, _ := hex.DecodeString(seedPrivate)
	f.Add(pub, priv)
	f.Add([]byte{0, 0}, []byte{0, 0})
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, pub, priv []byte) {
		key, err := ParseKeyBlob(KeyBlob{Public: pub, Private: priv})
		if err != nil {
			if !errors.Is(err, ErrKeyBlob) {
				t.Fatalf("error without ErrKeyBlob: %v", err)
			}
			return
		}
		// The check ParseKeyBlob promises: a point on P-256.
		raw, err := key.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw); err != nil {
			t.Fatalf("accepted a key off the curve: %v", err)
		}
	})
}

func FuzzReadResponse(f *testing.F) {
	f.Add([]byte{0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0})
	f.Add([]byte{0x80, 0x01, 0, 0, 0, 12, 0, 0, 0, 0, 1, 2, 3})
	f.Add([]byte{0x80, 0x01, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		rsp, err := readResponse(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrResponse) {
				t.Fatalf("error without ErrResponse: %v", err)
			}
			return
		}
		if len(rsp) < headerSize || len(rsp) > maxResponseSize || !bytes.Equal(rsp, data[:len(rsp)]) {
			t.Fatalf("response of %d bytes from %d bytes of input", len(rsp), len(data))
		}
	})
}

// The seed blob is a real one: ParseKeyBlob accepts it, so the fuzzer
// starts from a valid key and mutates inwards.
func TestFuzzSeedIsValid(t *testing.T) {
	pub, _ := hex.DecodeString(seedPublic)
	priv, _ := hex.DecodeString(seedPrivate)
	if _, err := ParseKeyBlob(KeyBlob{Public: pub, Private: priv}); err != nil {
		t.Fatal(err)
	}
}
