// Package pki owns the platform's certificate authority and its X.509 for
// every sigalg suite, ML-DSA included: the CA hierarchy (a root and an
// issuing CA whose keys live in a keys.Manager), the certificate profiles
// (root, issuing, device, TLS server), PKCS #10 requests, and chain
// verification.
//
// crypto/x509 cannot sign with ML-DSA nor encode an ML-DSA key, and its
// Verify cannot check an ML-DSA signature, so this package builds
// certificates and requests itself with encoding/asn1 — one builder for all
// suites — and verifies chains itself. ML-DSA follows RFC 9881: the
// signature AlgorithmIdentifier is the ML-DSA OID (2.16.840.1.101.3.4.3.17,
// .18 or .19, the same as the key's) with absent parameters, and the
// signature is pure ML-DSA with the empty context over the DER
// TBSCertificate. Classical certificates come out of the same code and are
// checked against crypto/x509 and OpenSSL in the tests.
//
//	ca, err := pki.Open(ctx, km, dir, pki.Config{Suite: sigalg.MLDSA65})
//	csr, err := pki.ParseCSR(der)                       // from the device
//	iss, err := ca.IssueDevice(ctx, pki.DeviceRequest{Identity: id, PublicKey: csr.PublicKey, Validity: d})
//	chain := ca.Chain()                                 // issuing CA, root
//	leaf, err := pki.VerifyChain(iss.DER, chain[:1], chain[1:], now, x509.ExtKeyUsageClientAuth)
//
// The CA holds no private key: it signs through the key manager's
// crypto.Signer with sigalg.Sign. Go's crypto/tls cannot verify ML-DSA
// signatures, so a CA whose suite TLS cannot use issues the platform's TLS
// server certificates from a separate ECDSA P-256 root (IssueServer,
// docs/decisions/0004-tls-under-an-ml-dsa-ca.md). docs/pki.md describes
// the hierarchy and every profile.
package pki

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Errors callers branch on.
var (
	// ErrMalformedCSR reports a certificate request that does not parse,
	// is too large, or holds a key Hallmark refuses.
	ErrMalformedCSR = errors.New("malformed certificate request")
	// ErrCSRSignature reports a request whose self-signature does not
	// verify.
	ErrCSRSignature = errors.New("certificate request signature invalid")
	// ErrMalformedCertificate reports a certificate that does not parse or
	// holds a key outside Hallmark's suites.
	ErrMalformedCertificate = errors.New("malformed certificate")
	// ErrUntrusted reports a certificate that does not chain to a root:
	// bad signature, unknown issuer, or a constraint violated.
	ErrUntrusted = errors.New("certificate not trusted")
	// ErrExpired reports a certificate used outside its validity period.
	ErrExpired = errors.New("certificate expired or not yet valid")
	// ErrCAMismatch reports a CA directory whose certificates do not match
	// the keys in the key manager, or another suite than configured.
	ErrCAMismatch = errors.New("CA certificates do not match the CA keys")
	// ErrInvalidRequest reports an issuance request the CA refuses.
	ErrInvalidRequest = errors.New("invalid certificate request")
)

// Key names in the key manager.
const (
	KeyRoot    = "ca-root"
	KeyIssuing = "ca-issuing"
	// KeyTLSRoot exists only for a CA whose suite TLS cannot use.
	KeyTLSRoot = "tls-root"
)

// File names in the CA directory. root.pem is written last: its presence
// marks a complete CA.
const (
	FileRoot    = "root.pem"
	FileIssuing = "issuing.pem"
	// FileTLSRoot is what TLS clients of the platform trust: the ECDSA
	// TLS root of a CA whose suite TLS cannot use, a copy of root.pem
	// otherwise.
	FileTLSRoot = "tls-root.pem"
)

// Config configures Open.
type Config struct {
	// Suite is the CA's signature suite. Empty means ecdsa-p256 for a new
	// CA and whatever the existing CA uses otherwise; a non-empty Suite
	// that differs from an existing CA's is ErrCAMismatch.
	Suite sigalg.ID
	// Name is the organisation in every subject ("Hallmark" if empty).
	Name string
	// RootValidity and IssuingValidity default to 20 and 10 years.
	RootValidity, IssuingValidity time.Duration
	// RevocationBaseURL, an http:// URL, is where internal/revocation
	// publishes this CA's revocation: device certificates then carry a
	// CRL Distribution Point <base>/crl/<CRLName>.crl and Authority
	// Information Access with the OCSP responder <base>/ocsp and the
	// issuing CA's certificate <base>/ca/<CRLName>.crt. Empty: neither
	// extension. It is the CA's, not the request's, because every
	// certificate the CA issues must point at the same places.
	RevocationBaseURL string
	// Now is the clock (time.Now if nil).
	Now func() time.Time

	// member names a further CA of a CASet ("" for a set's first CA and
	// a CA opened alone): its keys are named member + "." + KeyRoot and
	// so on, its subjects carry the name, it issues device certificates
	// only (no TLS root, no server certificates: the first CA serves
	// TLS) and its OCSP responder has a path of its own (OCSPPath + "/"
	// + member). Only OpenSet sets it.
	member string
}

const (
	defaultName            = "Hallmark"
	defaultRootValidity    = 20 * 365 * 24 * time.Hour
	defaultIssuingValidity = 10 * 365 * 24 * time.Hour
	// maxOrganization is RFC 5280's ub-organization-name.
	maxOrganization = 64
	maxCertPEM      = 64 << 10
)

func (c Config) withDefaults() (Config, error) {
	if c.Name == "" {
		c.Name = defaultName
	}
	if err := checkText(c.Name, maxOrganization); err != nil {
		return c, fmt.Errorf("CA name: %w", err)
	}
	base, err := CheckRevocationBaseURL(c.RevocationBaseURL)
	if err != nil {
		return c, err
	}
	c.RevocationBaseURL = base
	if c.Suite != "" {
		suite, err := c.Suite.Suite()
		if err != nil {
			return c, err
		}
		c.Suite = suite.ID()
	}
	if c.RootValidity == 0 {
		c.RootValidity = defaultRootValidity
	}
	if c.IssuingValidity == 0 {
		c.IssuingValidity = defaultIssuingValidity
	}
	if c.RootValidity < 0 || c.IssuingValidity < 0 {
		return c, errors.New("CA validity must be positive")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.member != "" && !caNamePattern.MatchString(c.member) {
		return c, fmt.Errorf("CA name %q: want 1 to 32 characters of a-z, 0-9 and '-'", c.member)
	}
	return c, nil
}

// keyName is the key manager's name of this CA's key base (KeyRoot…).
func (c Config) keyName(base string) string {
	if c.member == "" {
		return base
	}
	return c.member + "." + base
}

// role is the common name's role of one of the CA's certificates:
// "Root CA", or "ml-dsa-65 Root CA" for a further CA of a set, so that
// the CAs of one platform have subjects of their own.
func (c Config) role(base string) string {
	if c.member == "" {
		return base
	}
	return c.member + " " + base
}

// KeyName is the name in the key manager of the CA's key named base for
// a CA opened alone (KeyRoot, KeyIssuing, KeyOCSPResponder…): base itself
// for a set's first CA, prefixed for the others.
func (ca *CA) KeyName(base string) string { return ca.cfg.keyName(base) }

// CA is the platform's certificate authority. It is safe for concurrent
// use; the certificates it returns must not be modified.
type CA struct {
	cfg           Config
	suite         sigalg.Suite
	root, issuing *parsedCert
	issuingSigner crypto.Signer
	// tlsIssuer signs server certificates: the issuing CA, or the TLS
	// root when the CA's suite cannot be used in TLS.
	tlsIssuer *parsedCert
	tlsSigner crypto.Signer
	bundle    []byte
	// random is the source of serial numbers; tests replace it.
	random io.Reader
	// verified remembers VerifyDevice's successes (devicecache.go).
	verified verifiedCache
}

// Open loads the CA kept in dir, or creates it on first start: a root and
// an issuing key in km (names KeyRoot, KeyIssuing), a self-signed root
// certificate and an issuing CA certificate signed by the root, written
// to dir as PEM. When the suite cannot be used in TLS (ML-DSA) it also
// creates the ECDSA P-256 TLS root (KeyTLSRoot, FileTLSRoot); otherwise
// FileTLSRoot is a copy of the root, written on load if missing. On load it
// checks that each certificate holds its key's public key and that the
// issuing CA chains to the root, and refuses with ErrCAMismatch otherwise.
func Open(ctx context.Context, km keys.Manager, dir string, cfg Config) (*CA, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("open CA: %w", err)
	}
	if dir == "" {
		return nil, errors.New("open CA: no directory given")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open CA: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileRoot)); errors.Is(err, os.ErrNotExist) {
		if err := create(ctx, km, dir, cfg); err != nil {
			return nil, fmt.Errorf("create CA in %s: %w", dir, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("open CA: %w", err)
	}
	ca, err := load(ctx, km, dir, cfg)
	if err != nil {
		return nil, fmt.Errorf("open CA in %s: %w", dir, err)
	}
	return ca, nil
}

// Suite is the CA's signature suite.
func (ca *CA) Suite() sigalg.ID { return ca.suite.ID() }

// Chain returns the DER certificates above a device certificate: the
// issuing CA, then the root.
func (ca *CA) Chain() [][]byte {
	return [][]byte{clone(ca.issuing.Raw), clone(ca.root.Raw)}
}

// RootPEM is the trust bundle: the root certificate and, for a CA whose
// suite TLS cannot use, the TLS root after it.
func (ca *CA) RootPEM() []byte { return clone(ca.bundle) }

// RootCertificate is the parsed root certificate.
func (ca *CA) RootCertificate() *x509.Certificate { return ca.root.Certificate }

// IssuingCertificate is the parsed issuing CA certificate.
func (ca *CA) IssuingCertificate() *x509.Certificate { return ca.issuing.Certificate }

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// DeviceTrustPEM is what a TLS server that authenticates devices by their
// certificates (an MQTT broker, say) trusts: the root, then the issuing
// CA, in PEM. Such a server needs an ECDSA or Ed25519 CA: TLS stacks cannot
// verify ML-DSA signatures yet (decision 0004).
func (ca *CA) DeviceTrustPEM() []byte {
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.root.Raw})
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.issuing.Raw})...)
}
