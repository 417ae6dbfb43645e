//go:build cgo

package pkcs11kms_test

import (
	"context"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/keys/keystest"
	"github.com/hallmark-iot/hallmark/internal/keys/pkcs11kms/softhsmtest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// tokenSuites is what SoftHSM2 2.6 offers: ECDSA P-256 and Ed25519 keys,
// no ML-DSA; device keys wrapped in the token to an ECDH transport key,
// but only EC ones (it cannot wrap EdDSA keys), and never through a
// Wrapper on the host.
var tokenSuites = keystest.Config{
	Suites:     []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519},
	ECDHInside: true,
	ECDHSuites: []sigalg.ID{sigalg.ECDSAP256},
	ECDHOnly:   true,
}

func openToken(t *testing.T, tok *softhsmtest.Token) keys.Manager {
	t.Helper()
	m, err := keys.Open(context.Background(), tok.URI, keys.Options{})
	if err != nil {
		t.Fatalf("open %s: %v", tok, err)
	}
	return m
}

func TestContract(t *testing.T) {
	keystest.RunWith(t, tokenSuites, func(t *testing.T) keys.Manager {
		return openToken(t, softhsmtest.New(t))
	})
}

func TestPersistence(t *testing.T) {
	keystest.RunPersistenceWith(t, tokenSuites, func(t *testing.T) func() (keys.Manager, error) {
		tok := softhsmtest.New(t)
		return func() (keys.Manager, error) {
			return keys.Open(context.Background(), tok.URI, keys.Options{})
		}
	})
}
