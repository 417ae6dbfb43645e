package softkms

import (
	"crypto"
	"crypto/ecdsa"
	"fmt"
	"io"

	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// storeSigner is the crypto.Signer the store hands out. It is opaque, as an
// HSM's signer is, so callers take the same path (sigalg.Sign) for
// both, and it stops working when the store is closed instead of signing
// with a wiped key.
type storeSigner struct {
	store *Store
	name  string
	key   crypto.Signer
}

func (k *storeSigner) Public() crypto.PublicKey { return k.key.Public() }

// Sign follows the crypto.Signer conventions: an ECDSA key signs a digest
// of the hash opts names; Ed25519 and ML-DSA keys sign the whole message
// and require opts.HashFunc() == 0. ML-DSA signing is hedged, as sigalg's.
func (k *storeSigner) Sign(rand io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	k.store.mu.RLock()
	defer k.store.mu.RUnlock()
	if k.store.aead == nil {
		return nil, fmt.Errorf("sign with %s: %w", k.name, keys.ErrClosed)
	}
	if ec, ok := k.key.(*ecdsa.PrivateKey); ok {
		return ec.Sign(rand, msg, opts)
	}
	if opts != nil && opts.HashFunc() != crypto.Hash(0) {
		return nil, fmt.Errorf("sign with %s: %w: pre-hashed messages (%v)", k.name, keys.ErrUnsupported, opts.HashFunc())
	}
	suite, err := sigalg.SuiteOf(k.key)
	if err != nil {
		return nil, err
	}
	return suite.Sign(k.key, msg)
}
