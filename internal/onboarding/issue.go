package onboarding

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// issue signs the certificate and records the renewal in one State
// write, under the renewal limit and the product's window; forced
// reports that a grant let it through outside the window.
func (s *Service) issue(ctx context.Context, dev Device, opKey crypto.PublicKey, window time.Duration) (_ *Credentials, forced bool, _ error) {
	terms := RenewalTerms{Limit: s.cfg.Issuance.renewLimit(), Window: window}
	creds, err := s.issueWith(ctx, dev, opKey, func(cert Certificate, at time.Time) error {
		var err error
		forced, err = s.cfg.State.RecordRenewal(ctx, cert, at, terms)
		return err
	})
	return creds, forced, err
}

// issueWith signs the certificate and has record store it with the hash
// of the key it certifies. A serial collision
// (2^-64 after four billion certificates) is retried once with a fresh
// serial.
func (s *Service) issueWith(ctx context.Context, dev Device, opKey crypto.PublicKey,
	record func(cert Certificate, at time.Time) error) (*Credentials, error) {
	product, err := s.product(ctx, dev.ProductID)
	if err != nil {
		return nil, fmt.Errorf("product %q of %s: %w", dev.ProductID, dev.Identity, err)
	}
	spki, err := sigalg.MarshalPublicKey(opKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCSR, err)
	}
	iss, err := IssuerFor(s.cfg.Issuer, product)
	if err != nil {
		return nil, fmt.Errorf("issuing CA of product %q: %w", product.ID, err)
	}
	// Decided before the certificate is signed, so a webhook that cannot
	// decide refuses with nothing recorded; an allocation whose issuance
	// is then refused stays, the device's endpoint all the same.
	endpoint, err := s.allocate(ctx, dev, product)
	if err != nil {
		return nil, fmt.Errorf("cloud endpoint of %s: %w", dev.Identity, err)
	}
	var cert Certificate
	for attempt := 0; ; attempt++ {
		if cert, err = iss.Issue(ctx, dev.Identity, opKey, product.CertValidity); err != nil {
			return nil, fmt.Errorf("issue certificate: %w", err)
		}
		cert.KeyHash = sha256.Sum256(spki)
		err = record(cert, s.cfg.Now())
		if !errors.Is(err, ErrSerialTaken) || attempt > 0 {
			break
		}
	}
	switch {
	case standingRefusal(err) != nil:
		return nil, standingRefusal(err) // suspended, revoked or decommissioned between the check and now
	case errors.Is(err, ErrKeyInUse):
		return nil, fmt.Errorf("%w: the key is certified for another device", ErrBadCSR)
	case errors.Is(err, ErrIssuanceLimit):
		return nil, s.renewalLimitError(err)
	case errors.Is(err, ErrRenewalNotDue):
		return nil, s.renewalNotDueError(err)
	case errors.Is(err, ErrChallengeUsed), errors.Is(err, ErrChallengeExpired):
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("record onboarding: %w", err)
	}
	return s.credentialsAt(cert, product, endpoint), nil
}

// credentialsAt carry the chain and trust bundle of the CA that signed
// cert, which after a product moved to another CA is not the product's
// until the device renews, and the device's endpoint (allocation.go).
func (s *Service) credentialsAt(cert Certificate, product Product, endpoint string) *Credentials {
	iss := issuerOf(s.cfg.Issuer, cert)
	chain := append([]string{string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.DER}))}, iss.ChainPEM()...)
	return &Credentials{Identity: cert.Identity, CertificateChain: chain, TrustBundle: iss.TrustBundlePEM(),
		CloudEndpoint: endpoint, NotAfter: cert.NotAfter, RenewAfter: renewAfter(cert, product)}
}
