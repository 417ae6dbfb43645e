//go:build cgo

package pkcs11kms_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/keys/pkcs11kms/softhsmtest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// chipTransport is a chip's P-256 key-transport key with its private half,
// as the chip would hold it. Its Wrap must never be called by a token
// backend: that would hand it the plaintext.
type chipTransport struct {
	priv    *ecdh.PrivateKey
	wrapped int
}

func newChip(t *testing.T) *chipTransport {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &chipTransport{priv: k}
}

func (c *chipTransport) Wrap([]byte) ([]byte, error) {
	c.wrapped++
	return nil, errors.New("the station called the software Wrap: the plaintext left the token")
}

func (c *chipTransport) ECDHTransportKey() *ecdh.PublicKey { return c.priv.PublicKey() }

// unwrap is an independent reading of the wrapping format, written from
// its specification (keys.ECDHTransport), so that the token's side is
// checked against something other than itself.
func (c *chipTransport) unwrap(blob []byte) ([]byte, error) {
	if len(blob) < 1+65+16 || blob[0] != 0x01 {
		return nil, errors.New("not a version-1 blob")
	}
	ePub, err := ecdh.P256().NewPublicKey(blob[1:66])
	if err != nil {
		return nil, err
	}
	z, err := c.priv.ECDH(ePub)
	if err != nil {
		return nil, err
	}
	d := sha256.Sum256(append(append([]byte("hallmark ecdh key wrap v1"), c.priv.PublicKey().Bytes()...), blob[1:66]...))
	zc, err := aes.NewCipher(z)
	if err != nil {
		return nil, err
	}
	k := make([]byte, 32)
	zc.Encrypt(k[:16], d[:16])
	zc.Encrypt(k[16:], d[16:])
	p, err := kwpUnwrap(k, blob[66:])
	if err != nil {
		return nil, err
	}
	return trimDERPadding(p)
}

// trimDERPadding drops the zero bytes SoftHSM2 2.6 appends to a private key
// before wrapping it (to a multiple of 8, although RFC 5649 pads by
// itself): the PKCS #8 DER delimits itself, and at most 7 zero bytes may
// follow it.
func trimDERPadding(p []byte) ([]byte, error) {
	var v asn1.RawValue
	rest, err := asn1.Unmarshal(p, &v)
	if err != nil {
		return nil, err
	}
	if len(rest) > 7 || bytes.Count(rest, []byte{0}) != len(rest) {
		return nil, errors.New("bytes after the PKCS #8 are not zero padding")
	}
	return p[:len(p)-len(rest)], nil
}

// kwpUnwrap is AES key unwrap with padding (RFC 5649).
func kwpUnwrap(key, c []byte) ([]byte, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	if len(c)%8 != 0 || len(c) < 16 {
		return nil, errors.New("bad wrapped length")
	}
	n := len(c)/8 - 1
	var a [8]byte
	r := make([]byte, 8*n)
	var blk [16]byte
	if n == 1 {
		b.Decrypt(blk[:], c)
		copy(a[:], blk[:8])
		copy(r, blk[8:])
	} else {
		copy(a[:], c[:8])
		copy(r, c[8:])
		for j := 5; j >= 0; j-- {
			for i := n; i >= 1; i-- {
				t := uint64(n*j + i)
				binary.BigEndian.PutUint64(blk[:8], binary.BigEndian.Uint64(a[:])^t)
				copy(blk[8:], r[8*(i-1):8*i])
				b.Decrypt(blk[:], blk[:])
				copy(a[:], blk[:8])
				copy(r[8*(i-1):], blk[8:])
			}
		}
	}
	if binary.BigEndian.Uint32(a[:4]) != 0xA65959A6 {
		return nil, errors.New("integrity check failed")
	}
	mli := int(binary.BigEndian.Uint32(a[4:]))
	if mli <= 8*(n-1) || mli > 8*n {
		return nil, errors.New("bad message length indicator")
	}
	for _, p := range r[mli:] {
		if p != 0 {
			return nil, errors.New("non-zero padding")
		}
	}
	return r[:mli], nil
}

func deviceGen(t *testing.T) keys.DeviceKeyGenerator {
	t.Helper()
	m := openToken(t, softhsmtest.New(t))
	t.Cleanup(func() { m.Close() })
	return m.(keys.DeviceKeyGenerator)
}

// TestDeviceKeyWrappedInToken: the device key comes out only wrapped to
// the chip, the chip's private key opens it, and it is a working key pair.
func TestDeviceKeyWrappedInToken(t *testing.T) {
	gen := deviceGen(t)
	for _, id := range []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519} {
		t.Run(string(id), func(t *testing.T) {
			chip := newChip(t)
			pub, blob, err := gen.GenerateDeviceKey(context.Background(), id, chip)
			if id == sigalg.Ed25519 && errors.Is(err, keys.ErrUnsupported) {
				// SoftHSM2 2.6 cannot wrap EdDSA keys; the refusal must
				// say so and hand out nothing.
				if !strings.Contains(err.Error(), "CKR_KEY_NOT_WRAPPABLE") || blob != nil || chip.wrapped != 0 {
					t.Fatalf("Ed25519 refusal: %v (%d bytes out)", err, len(blob))
				}
				t.Logf("this token cannot wrap Ed25519 keys: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("GenerateDeviceKey: %v", err)
			}
			if chip.wrapped != 0 {
				t.Fatal("the backend called the transport's software Wrap")
			}
			pkcs8, err := chip.unwrap(blob)
			if err != nil {
				t.Fatalf("the chip cannot unwrap the blob: %v", err)
			}
			key, err := sigalg.ParsePrivateKey(pkcs8)
			if err != nil {
				t.Fatalf("unwrapped key is not PKCS #8 sigalg takes: %v\n%x", err, pkcs8)
			}
			want, _ := sigalg.MarshalPublicKey(pub)
			got, _ := sigalg.MarshalPublicKey(key.Public())
			if !bytes.Equal(want, got) {
				t.Fatal("the wrapped private key does not belong to the returned public key")
			}
			suite, _ := id.Suite()
			sig, err := suite.Sign(key, []byte("proof"))
			if err != nil || suite.Verify(pub, []byte("proof"), sig) != nil {
				t.Fatalf("the unwrapped key does not sign for pub: %v", err)
			}
			// What the station holds (the blob) does not contain the key.
			for _, secret := range [][]byte{pkcs8, privateBytes(t, key)} {
				if bytes.Contains(blob, secret) {
					t.Fatal("the blob contains the private key in the clear")
				}
			}
			// Another chip's key does not open it; a flipped bit is caught.
			if _, err := newChip(t).unwrap(blob); err == nil {
				t.Fatal("another chip unwrapped the blob")
			}
			bad := bytes.Clone(blob)
			bad[len(bad)-1] ^= 1
			if _, err := chip.unwrap(bad); err == nil {
				t.Fatal("a tampered blob unwrapped")
			}
		})
	}
}

// TestDeviceKeyOtherWrapperRefused: a transport the token cannot compute
// is refused, and its Wrap never sees the key.
func TestDeviceKeyOtherWrapperRefused(t *testing.T) {
	gen := deviceGen(t)
	w := &recordingWrapper{}
	_, out, err := gen.GenerateDeviceKey(context.Background(), sigalg.ECDSAP256, w)
	if !errors.Is(err, keys.ErrUnsupported) || out != nil || w.calls != 0 {
		t.Fatalf("generic wrapper: err %v, %d bytes out, %d Wrap calls; want ErrUnsupported, nothing", err, len(out), w.calls)
	}
	for _, want := range []string{"in the clear", "P-256 ECDH transport key", "soft:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

type recordingWrapper struct{ calls int }

func (w *recordingWrapper) Wrap(p []byte) ([]byte, error) { w.calls++; return p, nil }

func TestDeviceKeyMLDSARefused(t *testing.T) {
	gen := deviceGen(t)
	_, _, err := gen.GenerateDeviceKey(context.Background(), sigalg.MLDSA65, nil)
	if !errors.Is(err, keys.ErrUnsupported) || !strings.Contains(err.Error(), "CKM_ML_DSA_KEY_PAIR_GEN") {
		t.Fatalf("ML-DSA device key: %v, want ErrUnsupported naming CKM_ML_DSA_KEY_PAIR_GEN", err)
	}
}

func privateBytes(t *testing.T, key any) []byte {
	t.Helper()
	switch k := key.(type) {
	case interface{ Seed() []byte }:
		return k.Seed()
	case interface{ Bytes() ([]byte, error) }:
		b, err := k.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	t.Fatalf("key type %T", key)
	return nil
}
