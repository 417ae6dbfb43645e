package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"time"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// CRL is a parsed v2 CRL of any sigalg suite.
type CRL struct {
	Raw, RawTBS, RawIssuer []byte
	Issuer                 pkix.Name
	// SignatureOID is the signature algorithm: a sigalg suite's OID for a
	// CRL VerifyCRL accepts.
	SignatureOID           asn1.ObjectIdentifier
	Signature              []byte
	Number                 *big.Int
	AuthorityKeyID         []byte // nil if absent
	ThisUpdate, NextUpdate time.Time
	Entries                []CRLEntry
}

// ParseCRL parses a DER v2 CRL as the platform issues them, of any suite:
// crypto/x509 parses the structure (it leaves the signature algorithm of
// an ML-DSA CRL unknown), and this function adds what the profile needs.
// It refuses with ErrMalformedCRL: data after the CRL, signature algorithm
// parameters, a missing nextUpdate or CRL number, a critical extension
// other than those it processes (the CRL number and authority key
// identifier in the CRL, the reason code in an entry; so a delta CRL or an
// indirect CRL's certificateIssuer is refused, not misread), a serial
// that is not a positive integer of at most 16 bytes, and a reason that is
// not a CRLReason of a full CRL. It does not check the signature:
// VerifyCRL does.
func ParseCRL(der []byte) (*CRL, error) {
	if len(der) > MaxCRLDER {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrMalformedCRL, len(der), MaxCRLDER)
	}
	var outer certificate
	rest, err := asn1.Unmarshal(der, &outer)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrMalformedCRL, err)
	case len(rest) != 0:
		return nil, fmt.Errorf("%w: %d bytes after the CRL", ErrMalformedCRL, len(rest))
	case len(outer.SignatureAlgorithm.Parameters.FullBytes) != 0 || outer.Signature.BitLength%8 != 0:
		return nil, fmt.Errorf("%w: signature algorithm with parameters or a partial-byte signature", ErrMalformedCRL)
	}
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedCRL, err)
	}
	c := &CRL{Raw: rl.Raw, RawTBS: rl.RawTBSRevocationList, RawIssuer: rl.RawIssuer, Issuer: rl.Issuer,
		SignatureOID: outer.SignatureAlgorithm.Algorithm, Signature: rl.Signature, Number: rl.Number,
		AuthorityKeyID: rl.AuthorityKeyId, ThisUpdate: rl.ThisUpdate, NextUpdate: rl.NextUpdate}
	if err := c.checkProfile(rl.Extensions); err != nil {
		return nil, err
	}
	if c.Entries, err = parseEntries(rl.RevokedCertificateEntries); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *CRL) checkProfile(exts []pkix.Extension) error {
	switch {
	case c.NextUpdate.IsZero():
		return fmt.Errorf("%w: no nextUpdate", ErrMalformedCRL)
	case c.Number == nil:
		return fmt.Errorf("%w: no CRL number", ErrMalformedCRL)
	case c.Number.Sign() < 0 || c.Number.BitLen() > maxCRLNumberBits:
		return fmt.Errorf("%w: CRL number out of range", ErrMalformedCRL)
	}
	for _, e := range exts {
		if e.Critical && !e.Id.Equal(oidCRLNumber) && !e.Id.Equal(oidAuthorityKeyID) {
			return fmt.Errorf("%w: unhandled critical extension %s", ErrMalformedCRL, e.Id)
		}
	}
	return nil
}

func parseEntries(in []x509.RevocationListEntry) ([]CRLEntry, error) {
	out := make([]CRLEntry, 0, len(in))
	for i, e := range in {
		if e.SerialNumber.Sign() <= 0 || e.SerialNumber.BitLen() > 8*SerialSize {
			return nil, fmt.Errorf("%w: entry %d: serial is not a positive integer of at most %d bytes", ErrMalformedCRL, i, SerialSize)
		}
		if !validReason(e.ReasonCode) {
			return nil, fmt.Errorf("%w: entry %d: reason %d is not a CRLReason of a full CRL", ErrMalformedCRL, i, e.ReasonCode)
		}
		for _, ext := range e.Extensions {
			if ext.Critical && !ext.Id.Equal(oidReasonCode) {
				return nil, fmt.Errorf("%w: entry %d: unhandled critical extension %s", ErrMalformedCRL, i, ext.Id)
			}
		}
		entry := CRLEntry{RevokedAt: e.RevocationTime, Reason: e.ReasonCode}
		e.SerialNumber.FillBytes(entry.Serial[:])
		out = append(out, entry)
	}
	return out, nil
}

// VerifyCRL parses crlDER (ParseCRL) and checks that issuer signed it: the
// CRL's issuer name is issuer's subject byte for byte, its authority key
// identifier (when both have one) is issuer's subject key identifier,
// issuer is a CA allowed to sign CRLs (keyUsage cRLSign), the signature
// algorithm is issuer's suite and the signature verifies. This is the
// project's own verifier, for every suite: crypto/x509 cannot check an
// ML-DSA signature. issuer may come from crypto/x509 or ParseCertificate
// (an ML-DSA key is read from its SubjectPublicKeyInfo). Errors wrap
// ErrMalformedCRL or ErrUntrusted. Whether the CRL is current is the
// caller's question: CRL.CheckTime.
func VerifyCRL(crlDER []byte, issuer *x509.Certificate) (*CRL, error) {
	c, err := ParseCRL(crlDER)
	if err != nil {
		return nil, err
	}
	if issuer == nil {
		return nil, fmt.Errorf("%w: no CRL issuer", ErrUntrusted)
	}
	switch {
	case !bytes.Equal(c.RawIssuer, issuer.RawSubject):
		return nil, fmt.Errorf("%w: CRL issuer is not %q", ErrUntrusted, issuer.Subject.CommonName)
	case len(c.AuthorityKeyID) > 0 && len(issuer.SubjectKeyId) > 0 && !bytes.Equal(c.AuthorityKeyID, issuer.SubjectKeyId):
		return nil, fmt.Errorf("%w: CRL authority key identifier is not %q's", ErrUntrusted, issuer.Subject.CommonName)
	case !issuer.BasicConstraintsValid || !issuer.IsCA || issuer.KeyUsage&x509.KeyUsageCRLSign == 0:
		return nil, fmt.Errorf("%w: %q is not a CA allowed to sign CRLs", ErrUntrusted, issuer.Subject.CommonName)
	}
	pub, err := issuerKey(issuer)
	if err != nil {
		return nil, err
	}
	suite, err := sigalg.SuiteOf(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: CRL issuer key: %w", ErrUntrusted, err)
	}
	if !c.SignatureOID.Equal(suite.OID()) {
		return nil, fmt.Errorf("%w: CRL signature algorithm %s does not match the issuer's %s key", ErrUntrusted, c.SignatureOID, suite.ID())
	}
	if err := suite.Verify(pub, c.RawTBS, c.Signature); err != nil {
		return nil, fmt.Errorf("%w: CRL signature: %w", ErrUntrusted, err)
	}
	return c, nil
}

// issuerKey is issuer's public key: the one ParseCertificate (or
// crypto/x509, for a classical key) set, so that an ML-DSA key is not
// expanded again for every CRL, or else the one in its
// SubjectPublicKeyInfo.
func issuerKey(issuer *x509.Certificate) (crypto.PublicKey, error) {
	if _, err := sigalg.SuiteOf(issuer.PublicKey); err == nil {
		return issuer.PublicKey, nil
	}
	pub, err := sigalg.ParsePublicKey(issuer.RawSubjectPublicKeyInfo)
	if err != nil {
		return nil, fmt.Errorf("%w: CRL issuer key: %w", ErrUntrusted, err)
	}
	return pub, nil
}

// CheckTime reports ErrExpired unless now is within [ThisUpdate,
// NextUpdate]: a CRL past its nextUpdate says nothing about revocations
// since.
func (c *CRL) CheckTime(now time.Time) error {
	if now.Before(c.ThisUpdate) {
		return fmt.Errorf("%w: CRL is not valid before %s", ErrExpired, c.ThisUpdate.Format(time.RFC3339))
	}
	if now.After(c.NextUpdate) {
		return fmt.Errorf("%w: CRL was due to be replaced at %s", ErrExpired, c.NextUpdate.Format(time.RFC3339))
	}
	return nil
}

// Lookup returns the entry of serial, if the CRL lists it.
func (c *CRL) Lookup(serial [SerialSize]byte) (CRLEntry, bool) {
	for _, e := range c.Entries {
		if e.Serial == serial {
			return e, true
		}
	}
	return CRLEntry{}, false
}
