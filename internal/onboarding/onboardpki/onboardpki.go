// Package onboardpki binds the onboarding protocol to the platform's PKI:
// the CA seen as onboarding's Issuer, and the device side's certificate
// requests (onboarding.CSRMaker). It sits beside onboarding rather than in
// pki, which is the lower layer and knows no protocol, and outside
// onboarding, which knows no X.509 library of the platform's.
package onboardpki

import (
	"context"
	"crypto"
	"encoding/asn1"
	"encoding/pem"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/pki"
)

// Issuer is the platform's CA seen as onboarding's Issuer.
type Issuer struct {
	ca  *pki.CA
	now func() time.Time
	// chainPEM and rootPEM are what every credentials carry, encoded
	// once: the CA's chain does not change while it runs.
	chainPEM []string
	rootPEM  string
}

// NewIssuer adapts ca; now dates the certificates' IssuedAt (time.Now if
// nil).
func NewIssuer(ca *pki.CA, now func() time.Time) *Issuer {
	if now == nil {
		now = time.Now
	}
	chain := ca.Chain()
	return &Issuer{ca: ca, now: now, rootPEM: string(ca.RootPEM()),
		chainPEM: []string{string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: chain[0]}))}}
}

// oidCommonName is X.520's id-at-commonName.
var oidCommonName = asn1.ObjectIdentifier{2, 5, 4, 3}

// ParseCSR verifies a request's self-signature (pki.ParseCSR) and returns
// its key, its sole common name and its challengePassword.
func (i *Issuer) ParseCSR(der []byte) (onboarding.CertificateRequest, error) {
	csr, err := pki.ParseCSR(der)
	if err != nil {
		return onboarding.CertificateRequest{}, err
	}
	req := onboarding.CertificateRequest{PublicKey: csr.PublicKey, ChallengePassword: csr.ChallengePassword}
	names := 0
	for _, n := range csr.Subject.Names {
		if n.Type.Equal(oidCommonName) {
			names++
		}
	}
	if names == 1 {
		req.CommonName = csr.Subject.CommonName
	}
	return req, nil
}

// Issue signs a device certificate for pub naming id.
func (i *Issuer) Issue(ctx context.Context, id identity.ID, pub crypto.PublicKey, validity time.Duration) (onboarding.Certificate, error) {
	iss, err := i.ca.IssueDevice(ctx, pki.DeviceRequest{Identity: id, PublicKey: pub, Validity: validity})
	if err != nil {
		return onboarding.Certificate{}, err
	}
	return onboarding.Certificate{Serial: iss.Serial, Identity: id, NotBefore: iss.NotBefore, NotAfter: iss.NotAfter,
		DER: iss.DER, IssuedAt: i.now().UTC()}, nil
}

// ChainPEM is the issuing CA's certificate.
func (i *Issuer) ChainPEM() []string { return i.chainPEM }

// TrustBundlePEM is the CA's root bundle.
func (i *Issuer) TrustBundlePEM() string { return i.rootPEM }

// CSRs makes a device's certificate requests with pki.CreateCSRWith.
type CSRs struct{}

// MakeCSR implements onboarding.CSRMaker.
func (CSRs) MakeCSR(key crypto.Signer, commonName, challengePassword string) ([]byte, error) {
	return pki.CreateCSRWith(key, pki.CSROptions{CommonName: commonName, ChallengePassword: challengePassword})
}

var (
	_ onboarding.Issuer   = (*Issuer)(nil)
	_ onboarding.CSRMaker = CSRs{}
)
