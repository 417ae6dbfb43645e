package onboarding

import (
	"context"
	"crypto"
	"encoding/pem"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// caIssuer is the platform's CA seen as an Issuer.
type caIssuer struct {
	ca  *pki.CA
	now func() time.Time
}

// NewCAIssuer adapts the platform's CA to the service.
func NewCAIssuer(ca *pki.CA, now func() time.Time) Issuer {
	if now == nil {
		now = time.Now
	}
	return caIssuer{ca: ca, now: now}
}

func (i caIssuer) ParseCSR(der []byte) (crypto.PublicKey, error) {
	csr, err := pki.ParseCSR(der)
	if err != nil {
		return nil, err
	}
	return csr.PublicKey, nil
}

func (i caIssuer) Issue(ctx context.Context, id identity.ID, pub crypto.PublicKey, validity time.Duration) (store.Certificate, error) {
	iss, err := i.ca.IssueDevice(ctx, pki.DeviceRequest{Identity: id, PublicKey: pub, Validity: validity})
	if err != nil {
		return store.Certificate{}, err
	}
	return store.Certificate{Serial: iss.Serial, Identity: id, NotBefore: iss.NotBefore, NotAfter: iss.NotAfter,
		DER: iss.DER, IssuedAt: i.now().UTC()}, nil
}

func (i caIssuer) ChainPEM() []string {
	chain := i.ca.Chain()
	return []string{string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: chain[0]}))}
}

func (i caIssuer) TrustBundlePEM() string { return string(i.ca.RootPEM()) }
