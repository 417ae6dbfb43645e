package keystest

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// TransportWrapper is a real Wrapper, AES-256-GCM under a random transport
// key, standing in for a chip's key-transport key in tests.
type TransportWrapper struct {
	aead cipher.AEAD
	// Seen records the plaintexts handed to Wrap, so a test can check what
	// the key store exported.
	Seen [][]byte
}

// NewTransportWrapper makes a wrapper with a fresh random key.
func NewTransportWrapper() *TransportWrapper {
	key := make([]byte, 32)
	rand.Read(key)
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	return &TransportWrapper{aead: aead}
}

// Wrap seals plaintext with a random nonce prefixed.
func (w *TransportWrapper) Wrap(plaintext []byte) ([]byte, error) {
	w.Seen = append(w.Seen, bytes.Clone(plaintext))
	nonce := make([]byte, w.aead.NonceSize())
	rand.Read(nonce)
	return w.aead.Seal(nonce, nonce, plaintext, nil), nil
}

// Unwrap reverses Wrap.
func (w *TransportWrapper) Unwrap(wrapped []byte) ([]byte, error) {
	n := w.aead.NonceSize()
	if len(wrapped) < n {
		return nil, errors.New("unwrap: too short")
	}
	return w.aead.Open(nil, wrapped[:n], wrapped[n:], nil)
}

type failingWrapper struct{}

var errWrap = errors.New("transport key unavailable")

func (failingWrapper) Wrap([]byte) ([]byte, error) { return nil, errWrap }

// ECDHTransport is a chip's P-256 key-transport key with its private half,
// standing in for a chip in tests: Wrap computes sealing.WrapECDH in
// software (what a software key store calls), Unwrap is the chip's side.
type ECDHTransport struct {
	priv *ecdh.PrivateKey
	// Seen records the plaintexts handed to Wrap.
	Seen [][]byte
}

// NewECDHTransport makes a transport key with a fresh random key pair.
func NewECDHTransport() *ECDHTransport {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return &ECDHTransport{priv: k}
}

// Wrap wraps plaintext in software and records it.
func (w *ECDHTransport) Wrap(plaintext []byte) ([]byte, error) {
	w.Seen = append(w.Seen, bytes.Clone(plaintext))
	return sealing.WrapECDH(w.priv.PublicKey(), plaintext)
}

// ECDHTransportKey returns the public transport key.
func (w *ECDHTransport) ECDHTransportKey() *ecdh.PublicKey { return w.priv.PublicKey() }

// Unwrap is what the chip does with a wrapped device key: it returns the
// PKCS #8. SoftHSM2 2.6 pads a private key with zero bytes to a multiple
// of 8 before wrapping it (although RFC 5649 pads by itself), so up to 7
// zero bytes after the DER are dropped; the DER delimits itself.
func (w *ECDHTransport) Unwrap(blob []byte) ([]byte, error) {
	p, err := sealing.UnwrapECDH(w.priv, blob)
	if err != nil {
		return nil, err
	}
	var v asn1.RawValue
	rest, err := asn1.Unmarshal(p, &v)
	if err != nil {
		return nil, fmt.Errorf("unwrapped key is not DER: %w", err)
	}
	if len(rest) > 7 || bytes.Count(rest, []byte{0}) != len(rest) {
		return nil, errors.New("unwrapped key: bytes after the DER that are not zero padding")
	}
	return p[:len(p)-len(rest)], nil
}

func testDeviceKeys(t *testing.T, cfg Config, suites []sigalg.Suite, m keys.Manager) {
	defer m.Close()
	gen, ok := m.(keys.DeviceKeyGenerator)
	if !ok {
		t.Logf("%T does not generate device keys; nothing to check", m)
		return
	}
	ctx := context.Background()
	for _, suite := range suites {
		t.Run(string(suite.ID())+"/clear", func(t *testing.T) {
			pub, exported, err := gen.GenerateDeviceKey(ctx, suite.ID(), nil)
			if err != nil {
				t.Fatalf("GenerateDeviceKey: %v", err)
			}
			checkDeviceKey(t, suite, pub, exported)
		})
		t.Run(string(suite.ID())+"/ecdh", func(t *testing.T) {
			testECDHDeviceKey(t, cfg, suite, gen)
		})
		t.Run(string(suite.ID())+"/wrapped", func(t *testing.T) {
			w := NewTransportWrapper()
			pub, exported, err := gen.GenerateDeviceKey(ctx, suite.ID(), w)
			if cfg.ECDHOnly {
				if !errors.Is(err, keys.ErrUnsupported) || exported != nil || len(w.Seen) != 0 {
					t.Fatalf("generic Wrapper on an ECDH-only backend: err %v, %d bytes exported, Wrap called %d times; "+
						"want ErrUnsupported, nothing exported, Wrap never called", err, len(exported), len(w.Seen))
				}
				return
			}
			if err != nil {
				t.Fatalf("GenerateDeviceKey: %v", err)
			}
			if len(w.Seen) != 1 {
				t.Fatalf("Wrap called %d times, want once", len(w.Seen))
			}
			if bytes.Contains(exported, w.Seen[0]) {
				t.Fatal("the exported key contains the plaintext PKCS #8")
			}
			plain, err := w.Unwrap(exported)
			if err != nil {
				t.Fatalf("exported key is not the wrapper's output: %v", err)
			}
			checkDeviceKey(t, suite, pub, plain)
		})
	}
	t.Run("distinct", func(t *testing.T) {
		a, _, errA := gen.GenerateDeviceKey(ctx, suites[0].ID(), nil)
		b, _, errB := gen.GenerateDeviceKey(ctx, suites[0].ID(), nil)
		if errA != nil || errB != nil || bytes.Equal(mustSPKI(t, a), mustSPKI(t, b)) {
			t.Fatalf("two device keys are equal (%v, %v)", errA, errB)
		}
	})
	t.Run("wrap error", func(t *testing.T) {
		_, exported, err := gen.GenerateDeviceKey(ctx, suites[0].ID(), failingWrapper{})
		if cfg.ECDHOnly {
			if !errors.Is(err, keys.ErrUnsupported) || exported != nil {
				t.Fatalf("failing Wrap on an ECDH-only backend: err %v, exported %d bytes; want ErrUnsupported and nothing", err, len(exported))
			}
			return
		}
		if !errors.Is(err, errWrap) || exported != nil {
			t.Fatalf("failing Wrap: err %v, exported %d bytes; want the wrap error and nothing exported", err, len(exported))
		}
	})
	t.Run("unknown suite", func(t *testing.T) {
		if _, _, err := gen.GenerateDeviceKey(ctx, "rsa-2048", nil); !errors.Is(err, sigalg.ErrUnknownAlgorithm) {
			t.Fatalf("unknown suite: %v", err)
		}
	})
}

// testECDHDeviceKey checks the device key wrapped to a chip's ECDH
// transport key: the chip's private key opens it, it is the key pair
// returned, and the station saw no plaintext where the backend says it
// wraps inside.
func testECDHDeviceKey(t *testing.T, cfg Config, suite sigalg.Suite, gen keys.DeviceKeyGenerator) {
	w := NewECDHTransport()
	pub, exported, err := gen.GenerateDeviceKey(context.Background(), suite.ID(), w)
	if len(cfg.ECDHSuites) > 0 && !slices.Contains(cfg.ECDHSuites, suite.ID()) {
		if !errors.Is(err, keys.ErrUnsupported) || !strings.Contains(err.Error(), string(suite.ID())) || exported != nil || len(w.Seen) != 0 {
			t.Fatalf("ECDH transport for %s, which the backend cannot wrap: err %v, %d bytes exported, Wrap called %d times; "+
				"want ErrUnsupported naming the suite and nothing exported", suite.ID(), err, len(exported), len(w.Seen))
		}
		return
	}
	if err != nil {
		t.Fatalf("GenerateDeviceKey: %v", err)
	}
	switch {
	case cfg.ECDHInside && len(w.Seen) != 0:
		t.Fatal("the backend handed the plaintext key to the transport's software Wrap")
	case !cfg.ECDHInside && len(w.Seen) != 1:
		t.Fatalf("Wrap called %d times, want once", len(w.Seen))
	}
	plain, err := w.Unwrap(exported)
	if err != nil {
		t.Fatalf("the chip cannot unwrap the exported key: %v", err)
	}
	if bytes.Contains(exported, plain) {
		t.Fatal("the exported key contains the plaintext PKCS #8")
	}
	checkDeviceKey(t, suite, pub, plain)
	if _, err := NewECDHTransport().Unwrap(exported); err == nil {
		t.Fatal("another chip's key unwrapped the exported key")
	}
}

// checkDeviceKey parses the exported PKCS #8, checks it belongs to pub and
// signs verifiably: a chip programmed with it has a working identity.
func checkDeviceKey(t *testing.T, suite sigalg.Suite, pub any, pkcs8 []byte) {
	t.Helper()
	key, err := sigalg.ParsePrivateKey(pkcs8)
	if err != nil {
		t.Fatalf("exported key is not PKCS #8: %v", err)
	}
	assertSameKey(t, pub, key.Public())
	got, err := sigalg.SuiteOf(key)
	if err != nil || got.ID() != suite.ID() {
		t.Fatalf("exported key is of suite %v, want %s", got, suite.ID())
	}
	msg := []byte("device proof")
	sig, err := suite.Sign(key, msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := suite.Verify(pub, msg, sig); err != nil {
		t.Fatalf("device key signature: %v", err)
	}
}
