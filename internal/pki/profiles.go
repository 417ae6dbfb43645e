package pki

import (
	"context"
	"crypto"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"io"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// ClockSkew is how far before "now" every certificate's validity starts,
// so that a device or server whose clock is a few minutes behind the CA's
// accepts a certificate the moment it is issued.
const ClockSkew = 5 * time.Minute

// DeviceURIPrefix starts the URI subject alternative name that carries a
// device's identity: urn:hallmark:device:<64 lowercase hex>.
const DeviceURIPrefix = "urn:hallmark:device:"

// newSerial draws a serial number: 16 bytes from r with the top bit
// cleared (a DER INTEGER is signed, so the number is positive) and the
// next bit set (so it is never zero and its DER contents never lose a
// leading zero byte: always exactly 16 bytes). That leaves 126 random bits,
// far above the 64 the CA/Browser Forum requires. Uniqueness is the
// store's job: it refuses a serial it has seen and the caller retries.
func newSerial(r io.Reader) ([SerialSize]byte, error) {
	var s [SerialSize]byte
	if _, err := io.ReadFull(r, s[:]); err != nil {
		return s, fmt.Errorf("serial number: %w", err)
	}
	s[0] = s[0]&0x7f | 0x40
	return s, nil
}

// validityWindow is [now − ClockSkew, now + d], the start no earlier than
// the issuer's and the end no later than the issuer's, so that no
// certificate outlives the CA that vouches for it.
func validityWindow(now time.Time, d time.Duration, issuer *parsedCert) (notBefore, notAfter time.Time, err error) {
	if d <= 0 {
		return notBefore, notAfter, fmt.Errorf("%w: validity %v is not positive", ErrInvalidRequest, d)
	}
	now = now.UTC().Truncate(time.Second)
	notBefore, notAfter = now.Add(-ClockSkew), now.Add(d)
	if issuer != nil {
		if notBefore.Before(issuer.NotBefore) {
			notBefore = issuer.NotBefore
		}
		if notAfter.After(issuer.NotAfter) {
			notAfter = issuer.NotAfter
		}
		if !now.Before(notAfter) {
			return notBefore, notAfter, fmt.Errorf("%w: issuer %q expired at %s", ErrExpired, issuer.Subject.CommonName, issuer.NotAfter.Format(time.RFC3339))
		}
	}
	return notBefore, notAfter, nil
}

// caName is the subject of one of the CA's own certificates.
func caName(org, role string) ([]byte, error) {
	return encodeName(pkix.Name{Organization: []string{org}, CommonName: org + " " + role})
}

// selfSignedCA is a root: basicConstraints cA with pathLen, keyUsage
// keyCertSign and cRLSign, a subject key identifier and no authority key
// identifier (RFC 5280 allows omitting it in a self-signed certificate).
func selfSignedCA(r io.Reader, key crypto.Signer, org, role string, pathLen int, now time.Time, d time.Duration) ([]byte, error) {
	name, err := caName(org, role)
	if err != nil {
		return nil, err
	}
	t, err := caTemplate(r, key.Public(), name, name, pathLen, now, d, nil)
	if err != nil {
		return nil, err
	}
	return sign(t, key)
}

// issuingCA is the issuing CA certificate under root, pathLen 0: it
// signs end-entity certificates only.
func issuingCA(r io.Reader, root *parsedCert, rootKey crypto.Signer, pub crypto.PublicKey, org, role string, now time.Time, d time.Duration) ([]byte, error) {
	name, err := caName(org, role)
	if err != nil {
		return nil, err
	}
	t, err := caTemplate(r, pub, root.RawSubject, name, 0, now, d, root)
	if err != nil {
		return nil, err
	}
	return sign(t, rootKey)
}

func caTemplate(r io.Reader, pub crypto.PublicKey, issuer, subject []byte, pathLen int, now time.Time, d time.Duration, parent *parsedCert) (*template, error) {
	spki, err := sigalg.MarshalPublicKey(pub)
	if err != nil {
		return nil, err
	}
	t := &template{issuer: issuer, subject: subject, spki: spki, isCA: true, maxPathLen: pathLen,
		keyUsage: []int{kuKeyCertSign, kuCRLSign}}
	if parent != nil {
		t.authorityKeyID = parent.SubjectKeyId
	}
	if t.notBefore, t.notAfter, err = validityWindow(now, d, parent); err != nil {
		return nil, err
	}
	if t.serial, err = newSerial(r); err != nil {
		return nil, err
	}
	return t, nil
}

// DeviceRequest asks for a device certificate.
type DeviceRequest struct {
	// Identity is the device's identity (the SHA-256 of its enrolment
	// key's SPKI), put in the subject and the subject alternative name.
	Identity identity.ID
	// PublicKey is the operational key the certificate is for, of any
	// sigalg suite: the key of the device's CSR.
	PublicKey crypto.PublicKey
	// Validity is the certificate's lifetime, from the device's product;
	// it ends no later than the issuing CA.
	Validity time.Duration
}

// Issued is an issued certificate.
type Issued struct {
	DER       []byte
	Serial    [SerialSize]byte
	NotBefore time.Time
	NotAfter  time.Time
}

// IssueDevice signs a device certificate with the issuing CA: X.509 v3, a
// random serial (see newSerial; the caller retries if the store has it),
// subject O=<CA name>, CN=<identity hex>, the subject alternative name URI
// urn:hallmark:device:<identity hex>, keyUsage digitalSignature (critical),
// extKeyUsage clientAuth, basicConstraints cA FALSE (critical), authority
// and subject key identifiers, and, with a Config.RevocationBaseURL, CRL
// Distribution Points and Authority Information Access. The key is
// checked as sigalg.ParsePublicKey checks a key from outside (weak keys
// refused).
func (ca *CA) IssueDevice(ctx context.Context, req DeviceRequest) (*Issued, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("issue device certificate: %w", err)
	}
	t, err := deviceTemplate(ca.random, ca.issuing, ca.cfg.Name, req, ca.cfg.Now())
	if err != nil {
		return nil, fmt.Errorf("issue device certificate: %w", err)
	}
	t.revocation = ca.revocationURLs()
	der, err := sign(t, ca.issuingSigner)
	if err != nil {
		return nil, fmt.Errorf("issue device certificate for %s: %w", req.Identity, err)
	}
	return &Issued{DER: der, Serial: t.serial, NotBefore: t.notBefore, NotAfter: t.notAfter}, nil
}

func deviceTemplate(r io.Reader, issuer *parsedCert, org string, req DeviceRequest, now time.Time) (*template, error) {
	if req.Identity == (identity.ID{}) {
		return nil, fmt.Errorf("%w: zero identity", ErrInvalidRequest)
	}
	if req.PublicKey == nil {
		return nil, fmt.Errorf("%w: no public key", ErrInvalidRequest)
	}
	spki, err := checkedSPKI(req.PublicKey)
	if err != nil {
		return nil, err
	}
	id := req.Identity.String()
	subject, err := encodeName(pkix.Name{Organization: []string{org}, CommonName: id})
	if err != nil {
		return nil, err
	}
	t := &template{issuer: issuer.RawSubject, subject: subject, spki: spki,
		keyUsage:    []int{kuDigitalSignature},
		extKeyUsage: []asn1.ObjectIdentifier{oidClientAuth},
		// A URI names the device in a form that means nothing else:
		// it is not a host name (dNSName would let the certificate pass
		// for a server's), and TLS libraries expose URI SANs (as
		// SPIFFE uses them) while leaving the subject alone.
		uris:           []string{DeviceURIPrefix + id},
		authorityKeyID: issuer.SubjectKeyId,
	}
	if t.notBefore, t.notAfter, err = validityWindow(now, req.Validity, issuer); err != nil {
		return nil, err
	}
	if t.serial, err = newSerial(r); err != nil {
		return nil, err
	}
	return t, nil
}

// checkedSPKI encodes pub and parses it back, so that a key handed over
// as a Go value gets the checks of a key read from the wire.
func checkedSPKI(pub crypto.PublicKey) ([]byte, error) {
	spki, err := sigalg.MarshalPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	if _, err := sigalg.ParsePublicKey(spki); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	return spki, nil
}
