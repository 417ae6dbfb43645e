// Package onboardpki binds the onboarding protocol to the platform's PKI:
// the CA seen as onboarding's Issuer, and the device side's certificate
// requests (onboarding.CSRMaker). It sits beside onboarding rather than in
// pki, which is the lower layer and knows no protocol, and outside
// onboarding, which knows no X.509 library of the platform's.
package onboardpki

import (
	"context"
	"crypto"
	"crypto/x509"
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

// Issuers is the platform's CA set seen as onboarding's IssuerSet: each
// product's certificates come from the CA it names (pki.CASet.Get), each
// certificate goes out with its own CA's chain, and the trust bundle is
// that CA's root with what anchors the platform's TLS
// (pki.CASet.TrustBundle). Issue, ChainPEM and TrustBundlePEM of the set
// itself are the first CA's.
type Issuers struct {
	*Issuer // the first CA's
	set     *pki.CASet
	bySKI   map[string]*Issuer
	byName  map[string]*Issuer
}

// NewIssuers adapts set; now dates the certificates' IssuedAt.
func NewIssuers(set *pki.CASet, now func() time.Time) *Issuers {
	is := &Issuers{set: set, bySKI: map[string]*Issuer{}, byName: map[string]*Issuer{}}
	for _, ca := range set.All() {
		i := NewIssuer(ca, now)
		i.rootPEM = string(set.TrustBundle(ca))
		is.bySKI[string(ca.IssuingCertificate().SubjectKeyId)] = i
		is.byName[ca.Name()] = i
		if is.Issuer == nil {
			is.Issuer = i
		}
	}
	return is
}

// ForProduct implements onboarding.IssuerSet: the CA p names, the first
// for "".
func (is *Issuers) ForProduct(p onboarding.Product) (onboarding.Issuer, error) {
	ca, err := is.set.Get(p.IssuingCA)
	if err != nil {
		return nil, err
	}
	return is.byName[ca.Name()], nil
}

// ForCertificate implements onboarding.IssuerSet: the CA whose issuing
// key identifier cert's authority key identifier names.
func (is *Issuers) ForCertificate(cert onboarding.Certificate) onboarding.Issuer {
	if len(is.byName) == 1 {
		return is.Issuer
	}
	c, err := x509.ParseCertificate(cert.DER)
	if err != nil {
		return nil
	}
	if i := is.bySKI[string(c.AuthorityKeyId)]; i != nil {
		return i
	}
	return nil
}

var _ onboarding.IssuerSet = (*Issuers)(nil)
