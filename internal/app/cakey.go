package app

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hallmark-iot/hallmark/internal/keys"
	// The software key store serves the default CA key URI; the PKCS #11
	// backend serves --ca-key-uri pkcs11:… (in a build without cgo its
	// opener says why it cannot), the TPM backend tpm:….
	_ "github.com/hallmark-iot/hallmark/internal/keys/pkcs11kms"
	_ "github.com/hallmark-iot/hallmark/internal/keys/softkms"
	_ "github.com/hallmark-iot/hallmark/internal/keys/tpmkms" // tpm:DEVICE?dir=DIR, keys wrapped by a TPM 2.0
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// ErrCASuite reports a CA suite the platform does not offer.
var ErrCASuite = errors.New("suite not offered for the CA")

// CASuites are the suites a CA may use, the default first: ECDSA P-256,
// which every TLS stack verifies, and ML-DSA-65, the post-quantum CA with
// an ECDSA TLS root beside it (decision 0004). They are the two the CA's
// tests, docs/pki.md and the demo cover; Ed25519 and ML-DSA-44/87 stay
// device suites, so that each CA suite offered is one that is exercised.
func CASuites() []sigalg.ID { return []sigalg.ID{sigalg.ECDSAP256, sigalg.MLDSA65} }

// checkCASuite returns the canonical name of id if a CA may use it.
func checkCASuite(id sigalg.ID) (sigalg.ID, error) {
	suite, err := id.Suite()
	if err != nil {
		return "", fmt.Errorf("serve: CA suite: %w", err)
	}
	if !slices.Contains(CASuites(), suite.ID()) {
		return "", fmt.Errorf("serve: CA suite %s: %w (a CA may use %s)", suite.ID(), ErrCASuite, caSuiteNames())
	}
	return suite.ID(), nil
}

func caSuiteNames() string {
	var names []string
	for _, id := range CASuites() {
		names = append(names, string(id))
	}
	return strings.Join(names, ", ")
}

// DefaultCAKeyURI is the CA key URI when Config.CAKeyURI is empty: the
// software key store in the data directory, where the CA's keys have
// always been.
func DefaultCAKeyURI(dataDir string) string {
	return "soft:" + filepath.Join(dataDir, KeysDir)
}

// checkCAKeyURI refuses, before anything is created, a CA key URI whose
// scheme no linked backend serves (a planned one such as pkcs11: says
// why), and fills in the default.
func (c *Config) checkCAKeyURI() error {
	if c.CAKeyURI == "" {
		c.CAKeyURI = DefaultCAKeyURI(c.DataDir)
	}
	if err := keys.CheckURI(c.CAKeyURI); err != nil {
		return fmt.Errorf("serve: CA key URI: %w", err)
	}
	return nil
}

// isSoftURI reports a CA key URI of the software store, the one backend
// whose secret the platform may make up (the development passphrase).
func isSoftURI(uri string) bool { return strings.HasPrefix(uri, "soft:") }

// ensureTLSKey returns the signer of the platform's TLS server key,
// pki.KeyTLSServer in the CA's key manager, creating it on first start. A
// key of that name that is not ECDSA P-256 is refused, not replaced: it
// may be someone's.
func ensureTLSKey(ctx context.Context, km keys.Manager) (crypto.Signer, error) {
	name := pki.KeyTLSServer
	pub, err := km.CreateKey(ctx, keys.CreateKeyRequest{Name: name, Suite: sigalg.ECDSAP256})
	if errors.Is(err, keys.ErrExists) {
		pub, err = km.PublicKey(ctx, name)
	}
	if err != nil {
		return nil, fmt.Errorf("TLS key %s: %w", name, err)
	}
	if ec, ok := pub.(*ecdsa.PublicKey); !ok || ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("TLS key %s: %w: the key store holds a %T under this name, want ECDSA P-256", name, pki.ErrCAMismatch, pub)
	}
	signer, err := km.Signer(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("TLS key %s: %w", name, err)
	}
	return signer, nil
}

// caKeyHint adds to a key store's refusal of a suite (keys.ErrUnsupported,
// a token without the ML-DSA mechanisms) what the operator can do about
// it. The platform has one CA key URI, so a CA of a suite the token cannot
// hold cannot be kept elsewhere beside it; start fails instead of making
// that CA's keys somewhere the operator did not choose.
func (p *Platform) caKeyHint(err error) error {
	if !errors.Is(err, keys.ErrUnsupported) || isSoftURI(p.cfg.CAKeyURI) {
		return err
	}
	scheme, _, _ := strings.Cut(p.cfg.CAKeyURI, ":")
	return fmt.Errorf("%w; the platform has one CA key URI, so this CA cannot be kept elsewhere: leave its suite out of --ca-suite and --ca-suites, or keep all CA keys in a soft: store (--ca-key-uri soft:DIR), or use a %s: token that offers the suite (docs/pki.md)", err, scheme)
}
