package onboarding

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// The device side's one "onboard this device" sequence (decision 0001:
// one implementation of each step), which the command line, the demo and
// the load generator all run.

// ErrChainInvalid marks issued credentials that do not hold what was
// asked: another identity, no chain, a chain that does not parse or
// verify, a leaf that does not certify the operational key.
var ErrChainInvalid = errors.New("issued certificate chain invalid")

// Onboardee is a device ready to onboard: its identity, its root of trust
// and its operational key of a suite. A booted *device.Device is one, and
// so is the load generator's *fleet.Onboardable.
type Onboardee interface {
	Prover
	Identity() (identity.ID, error)
	OperationalKey(suite sigalg.ID) (crypto.Signer, error)
}

// ChainVerifier verifies an issued chain (DER, leaf first) to the
// platform's roots for client authentication and checks that the leaf
// names id; it returns the leaf. It is the caller's, who holds the roots
// and the PKI (pki.VerifyChain with pki.DeviceIdentity, or pki.CA's
// VerifyDevice).
type ChainVerifier func(chain [][]byte, id identity.ID) (*x509.Certificate, error)

// Onboarded is a device's outcome of OnboardDevice.
type Onboarded struct {
	Identity    identity.ID
	Credentials *Credentials
	// Chain is Credentials.CertificateChain decoded, leaf first.
	Chain [][]byte
	// Leaf is the verified leaf; nil unless a verifier was given.
	Leaf *x509.Certificate
	// Operational is the key the leaf certifies.
	Operational crypto.Signer
}

// OnboardDevice onboards dev with its operational key of opSuite, the
// request bound to the exchange (OnboardWithKey), and checks what comes
// back: the credentials name dev's identity and carry a chain of PEM
// certificates; if verify is not nil, the chain verifies and its leaf
// names the identity and certifies the operational key. A check that
// fails is ErrChainInvalid.
func (c *Client) OnboardDevice(ctx context.Context, dev Onboardee, opSuite sigalg.ID, verify ChainVerifier) (*Onboarded, error) {
	id, err := dev.Identity()
	if err != nil {
		return nil, fmt.Errorf("onboard: %w", err)
	}
	op, err := dev.OperationalKey(opSuite)
	if err != nil {
		return nil, fmt.Errorf("onboard: %w", err)
	}
	creds, err := c.OnboardWithKey(ctx, dev, id, op)
	if err != nil {
		return nil, err
	}
	out := &Onboarded{Identity: id, Credentials: creds, Operational: op}
	if out.Chain, err = decodeChain(creds, id); err != nil {
		return nil, err
	}
	if verify != nil {
		if err := out.Verify(verify); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Verify verifies o's chain with verify and checks that its leaf
// certifies the operational key, setting o.Leaf; a failure is
// ErrChainInvalid. OnboardDevice calls it when given a verifier; a caller
// that times the exchange alone calls it after.
func (o *Onboarded) Verify(verify ChainVerifier) error {
	leaf, err := verify(o.Chain, o.Identity)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrChainInvalid, err)
	}
	spki, err := sigalg.MarshalPublicKey(o.Operational.Public())
	if err != nil {
		return fmt.Errorf("onboard: operational key: %w", err)
	}
	if !bytes.Equal(leaf.RawSubjectPublicKeyInfo, spki) {
		return fmt.Errorf("%w: the leaf does not certify the operational key", ErrChainInvalid)
	}
	o.Leaf = leaf
	return nil
}

// decodeChain checks that creds are id's and decodes their chain.
func decodeChain(creds *Credentials, id identity.ID) ([][]byte, error) {
	if creds.Identity != id {
		return nil, fmt.Errorf("%w: credentials for %s, not %s", ErrChainInvalid, creds.Identity, id)
	}
	chain := make([][]byte, 0, len(creds.CertificateChain))
	for _, p := range creds.CertificateChain {
		block, _ := pem.Decode([]byte(p))
		if block == nil || block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: a chain element is not a PEM certificate", ErrChainInvalid)
		}
		chain = append(chain, block.Bytes)
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("%w: empty chain", ErrChainInvalid)
	}
	return chain, nil
}
