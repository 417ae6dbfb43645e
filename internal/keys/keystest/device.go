package keystest

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/keys"
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

func testDeviceKeys(t *testing.T, m keys.Manager) {
	defer m.Close()
	gen, ok := m.(keys.DeviceKeyGenerator)
	if !ok {
		t.Logf("%T does not generate device keys; nothing to check", m)
		return
	}
	ctx := context.Background()
	for _, suite := range sigalg.All() {
		t.Run(string(suite.ID())+"/clear", func(t *testing.T) {
			pub, exported, err := gen.GenerateDeviceKey(ctx, suite.ID(), nil)
			if err != nil {
				t.Fatalf("GenerateDeviceKey: %v", err)
			}
			checkDeviceKey(t, suite, pub, exported)
		})
		t.Run(string(suite.ID())+"/wrapped", func(t *testing.T) {
			w := NewTransportWrapper()
			pub, exported, err := gen.GenerateDeviceKey(ctx, suite.ID(), w)
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
		a, _, errA := gen.GenerateDeviceKey(ctx, sigalg.Ed25519, nil)
		b, _, errB := gen.GenerateDeviceKey(ctx, sigalg.Ed25519, nil)
		if errA != nil || errB != nil || bytes.Equal(mustSPKI(t, a), mustSPKI(t, b)) {
			t.Fatalf("two device keys are equal (%v, %v)", errA, errB)
		}
	})
	t.Run("wrap error", func(t *testing.T) {
		_, exported, err := gen.GenerateDeviceKey(ctx, sigalg.MLDSA65, failingWrapper{})
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
