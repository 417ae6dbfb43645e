// Package keys owns the key-manager abstraction for Hallmark's long-lived
// signing keys: the provisioning station's manifest key and the platform
// CA's keys (app.Config.CAKeyURI). A Manager creates named key pairs and
// hands out crypto.Signers without revealing private keys; backends (the
// software store in internal/keys/softkms, PKCS #11 tokens in pkcs11kms,
// the host's TPM 2.0 in tpmkms) register an opener for a URI scheme and
// are chosen by URI with Open.
//
// The core interface is deliberately small. Capabilities that only some
// backends have, such as generating a device key for injection into a chip,
// are separate interfaces a caller finds by type assertion, so a backend
// never has to fake what it cannot do.
package keys

import (
	"context"
	"crypto"
	"crypto/ecdh"
	"errors"
	"fmt"
	"regexp"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Errors callers branch on. Backends wrap them with context.
var (
	// ErrNotFound reports a key name the store does not hold.
	ErrNotFound = errors.New("key not found")
	// ErrExists reports a CreateKey for a name that is already taken.
	ErrExists = errors.New("key already exists")
	// ErrInvalidName reports a key name outside the allowed alphabet.
	ErrInvalidName = errors.New("invalid key name")
	// ErrPassphrase reports a passphrase that does not open the store.
	ErrPassphrase = errors.New("wrong passphrase")
	// ErrCorrupt reports stored key material that fails its integrity
	// check: tampered, truncated, or moved from another name or store.
	ErrCorrupt = errors.New("key store corrupt or tampered")
	// ErrUnsupported reports an operation, suite or URI scheme a backend
	// does not provide.
	ErrUnsupported = errors.New("unsupported by this key manager")
	// ErrClosed reports use of a Manager after Close.
	ErrClosed = errors.New("key manager closed")
)

// Manager holds named signing key pairs. Implementations are safe for
// concurrent use.
type Manager interface {
	// CreateKey makes a new key pair inside the manager and returns its
	// public key. It fails with ErrExists if the name is taken.
	CreateKey(ctx context.Context, req CreateKeyRequest) (crypto.PublicKey, error)
	// PublicKey returns the public key of the named key pair.
	PublicKey(ctx context.Context, name string) (crypto.PublicKey, error)
	// Signer returns a signer for the named key pair. Sign whole messages
	// with it through sigalg.Sign, which knows each suite's conventions.
	Signer(ctx context.Context, name string) (crypto.Signer, error)
	// Close releases the manager's resources and forgets cached keys.
	Close() error
}

// CreateKeyRequest names the key pair to create and its signature suite.
type CreateKeyRequest struct {
	Name  string
	Suite sigalg.ID
}

// Wrapper encrypts a device private key for transport to one chip, for
// example under the chip's key-transport key. In an HSM backend the
// wrapping happens inside the HSM and the plaintext never reaches the host.
type Wrapper interface {
	Wrap(plaintext []byte) ([]byte, error)
}

// ECDHTransport is a chip's key-transport key that a key store can wrap to
// without the device key ever leaving the store in the clear: a P-256 ECDH
// public key, and the wrapping format of sealing.WrapECDH (ECDH, a key
// derived by AES-ECB encryption of a context hash, then AES key wrap with
// padding, RFC 5649), which an HSM can compute with the mechanisms of
// PKCS #11 2.40. Its Wrap method computes the same format in software, for
// key stores whose device keys live in host memory anyway.
type ECDHTransport interface {
	Wrapper
	ECDHTransportKey() *ecdh.PublicKey
}

// DeviceKeyGenerator is the optional capability behind the "inject" root of
// trust: the station's key store makes a device key pair for a chip that
// cannot make its own, and the private key leaves the store once, for
// programming, and is not kept.
//
// With a non-nil wrap the private key leaves only as wrap.Wrap(PKCS #8 DER).
// With a nil wrap it leaves in the clear as PKCS #8 DER; that is the weaker
// path and the caller must record it (a manifest's "injection":"clear").
type DeviceKeyGenerator interface {
	GenerateDeviceKey(ctx context.Context, suite sigalg.ID, wrap Wrapper) (pub crypto.PublicKey, exported []byte, err error)
}

// MaxNameLen bounds key names; names are file names in the software store
// and labels in an HSM.
const MaxNameLen = 64

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidateName refuses names outside ^[a-z0-9][a-z0-9._-]{0,63}$: lower
// case so that case-insensitive file systems cannot alias two keys, and no
// slash or leading dot so that a name can never reach outside the store.
func ValidateName(name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("%w %q: want 1 to %d characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit",
			ErrInvalidName, name, MaxNameLen)
	}
	return nil
}
