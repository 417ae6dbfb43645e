package tpmkms

import (
	"context"
	"crypto"
	"fmt"
	"io"

	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/tpm"
)

// signer is the crypto.Signer the store hands out: it signs in the TPM,
// through the store so that its commands queue behind the store's others,
// and refuses once the store is closed.
type signer struct {
	store *Store
	name  string
	key   *tpm.Key
}

func (k *signer) Public() crypto.PublicKey { return k.key.Public() }

// Sign signs a digest as crypto.Signer requires of an ECDSA key (sigalg.Sign
// passes a SHA-256 digest with crypto.SHA256; x509 and TLS may ask for
// SHA-384 or SHA-512) and returns an ASN.1 DER signature. rand is unused:
// the TPM draws the nonce itself. crypto.Signer gives Sign no context;
// internal/tpm bounds each operation in time instead.
func (k *signer) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts == nil || opts.HashFunc() == 0 {
		return nil, fmt.Errorf("sign with %s: %w: an ECDSA key in the TPM signs digests, not whole messages", k.name, keys.ErrUnsupported)
	}
	k.store.mu.Lock()
	defer k.store.mu.Unlock()
	if k.store.closed {
		return nil, fmt.Errorf("sign with %s: %w", k.name, keys.ErrClosed)
	}
	sig, err := k.key.SignContext(context.Background(), digest, opts)
	if err != nil {
		return nil, fmt.Errorf("sign with %s: %w", k.name, err)
	}
	return sig, nil
}
