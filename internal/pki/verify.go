package pki

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"time"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Limits on what VerifyChain and ParseCertificate accept. An ML-DSA-87
// certificate signed with ML-DSA-87 is under 8 KiB.
const (
	MaxCertificateDER = 16 << 10
	maxIntermediates  = 8
	maxRoots          = 16
	maxChainLen       = 6
)

// parsedCert is a certificate with what crypto/x509 leaves out for ML-DSA:
// the public key (set in Certificate.PublicKey by sigalg, for every suite)
// and the signature algorithm's OID.
type parsedCert struct {
	*x509.Certificate
	sigOID asn1.ObjectIdentifier
}

// ParseCertificate parses a DER X.509 v3 certificate of any sigalg suite.
// crypto/x509 parses ML-DSA certificates but leaves PublicKey nil and
// SignatureAlgorithm unknown; here PublicKey is always set, from
// sigalg.ParsePublicKey (canonical encodings only, weak keys refused), so a
// key outside Hallmark's suites (RSA, P-384) is refused. The returned
// certificate is otherwise crypto/x509's.
func ParseCertificate(der []byte) (*x509.Certificate, error) {
	p, err := parseCert(der)
	if err != nil {
		return nil, err
	}
	return p.Certificate, nil
}

func parseCert(der []byte) (*parsedCert, error) {
	if len(der) > MaxCertificateDER {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrMalformedCertificate, len(der), MaxCertificateDER)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedCertificate, err)
	}
	if cert.Version != 3 {
		return nil, fmt.Errorf("%w: version %d, want 3", ErrMalformedCertificate, cert.Version)
	}
	pub, err := sigalg.ParsePublicKey(cert.RawSubjectPublicKeyInfo)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedCertificate, err)
	}
	cert.PublicKey = pub
	// crypto/x509 has checked that the outer and inner algorithm
	// identifiers are equal; read the outer one for its OID.
	var outer certificate
	if _, err := asn1.Unmarshal(der, &outer); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedCertificate, err)
	}
	if len(outer.SignatureAlgorithm.Parameters.FullBytes) != 0 || outer.Signature.BitLength%8 != 0 {
		return nil, fmt.Errorf("%w: signature algorithm with parameters or a partial-byte signature", ErrMalformedCertificate)
	}
	return &parsedCert{Certificate: cert, sigOID: outer.SignatureAlgorithm.Algorithm}, nil
}

// checkSignedBy reports whether issuerKey's suite signed c: the signature
// algorithm must be that suite's (so a P-256 key cannot be claimed to have
// signed with SHA-384, nor an ML-DSA-65 key with ML-DSA-44's OID).
func (c *parsedCert) checkSignedBy(issuer *x509.Certificate) error {
	suite, err := sigalg.SuiteOf(issuer.PublicKey)
	if err != nil {
		return fmt.Errorf("%w: issuer key: %w", ErrUntrusted, err)
	}
	if !c.sigOID.Equal(suite.OID()) {
		return fmt.Errorf("%w: signature algorithm %s does not match the issuer's %s key", ErrUntrusted, c.sigOID, suite.ID())
	}
	if err := suite.Verify(issuer.PublicKey, c.RawTBSCertificate, c.Signature); err != nil {
		return fmt.Errorf("%w: %q: %w", ErrUntrusted, c.Subject.CommonName, err)
	}
	return nil
}

// VerifyChain verifies the certificate leafDER up to one of roots through
// intermediates, for every sigalg suite, and returns the parsed leaf.
// crypto/x509's Verify cannot check ML-DSA signatures, hence this.
//
// It checks, for every certificate of the path: the signature with the
// issuer's key and suite; the validity period at now (roots included); no
// unhandled critical extension. For every issuer: a v3 CA (basicConstraints
// cA TRUE), keyUsage with keyCertSign, pathLenConstraint, and an
// extKeyUsage, if it has one, that allows usage. The leaf must name usage
// (or anyExtendedKeyUsage) in its extKeyUsage; a leaf without the
// extension is refused, which is stricter than RFC 5280's "any purpose".
// usage x509.ExtKeyUsageAny skips the purpose checks.
//
// Roots are trust anchors: their own signature is not checked. Name
// chaining compares DER issuer and subject names byte for byte, and key
// identifiers when both sides have them. Errors wrap ErrMalformedCertificate
// for input that does not parse, ErrExpired for a certificate outside its
// validity, and ErrUntrusted for everything else.
func VerifyChain(leafDER []byte, intermediates, roots [][]byte, now time.Time, usage x509.ExtKeyUsage) (*x509.Certificate, error) {
	if len(intermediates) > maxIntermediates || len(roots) > maxRoots {
		return nil, fmt.Errorf("%w: %d intermediates and %d roots (at most %d and %d)", ErrUntrusted, len(intermediates), len(roots), maxIntermediates, maxRoots)
	}
	v := verifier{now: now, usage: usage}
	var err error
	if v.intermediates, err = parseAll(intermediates, "intermediate"); err != nil {
		return nil, err
	}
	if v.roots, err = parseAll(roots, "root"); err != nil {
		return nil, err
	}
	return v.verify(leafDER)
}

func parseAll(ders [][]byte, what string) ([]*parsedCert, error) {
	out := make([]*parsedCert, 0, len(ders))
	for i, der := range ders {
		c, err := parseCert(der)
		if err != nil {
			return nil, fmt.Errorf("%s %d: %w", what, i, err)
		}
		out = append(out, c)
	}
	return out, nil
}

type verifier struct {
	now           time.Time
	usage         x509.ExtKeyUsage
	intermediates []*parsedCert
	roots         []*parsedCert
}

func (v *verifier) verify(leafDER []byte) (*x509.Certificate, error) {
	leaf, err := parseCert(leafDER)
	if err != nil {
		return nil, err
	}
	if err := v.checkLeaf(leaf); err != nil {
		return nil, err
	}
	if err := v.extend([]*parsedCert{leaf}); err != nil {
		return nil, err
	}
	return leaf.Certificate, nil
}

func (v *verifier) checkLeaf(leaf *parsedCert) error {
	if err := v.checkCommon(leaf); err != nil {
		return err
	}
	if v.usage != x509.ExtKeyUsageAny && !allowsUsage(leaf.ExtKeyUsage, v.usage) {
		return fmt.Errorf("%w: %q is not valid for %s", ErrUntrusted, leaf.Subject.CommonName, usageName(v.usage))
	}
	return nil
}

// extend tries to complete path (leaf first) with an issuer of its last
// certificate: a root ends the path, an intermediate continues it. It
// returns nil for the first complete path, or the first error met.
func (v *verifier) extend(path []*parsedCert) error {
	if len(path) >= maxChainLen {
		return fmt.Errorf("%w: no path within %d certificates", ErrUntrusted, maxChainLen)
	}
	child := path[len(path)-1]
	var firstErr error
	try := func(issuer *parsedCert, isRoot bool) bool {
		err := v.checkIssuer(path, issuer)
		if err == nil && !isRoot {
			err = v.extend(append(path[:len(path):len(path)], issuer))
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
		return err == nil
	}
	for _, root := range v.roots {
		if issues(root, child) && try(root, true) {
			return nil
		}
	}
	for _, inter := range v.intermediates {
		if issues(inter, child) && !onPath(path, inter) && try(inter, false) {
			return nil
		}
	}
	if firstErr == nil {
		firstErr = fmt.Errorf("%w: no issuer of %q among %d intermediates and %d roots", ErrUntrusted, child.Subject.CommonName, len(v.intermediates), len(v.roots))
	}
	return firstErr
}

// checkIssuer checks that issuer may sign the last certificate of path,
// and did.
func (v *verifier) checkIssuer(path []*parsedCert, issuer *parsedCert) error {
	if err := v.checkCommon(issuer); err != nil {
		return err
	}
	name := issuer.Subject.CommonName
	switch {
	case !issuer.BasicConstraintsValid || !issuer.IsCA:
		return fmt.Errorf("%w: issuer %q is not a CA", ErrUntrusted, name)
	case issuer.KeyUsage&x509.KeyUsageCertSign == 0:
		return fmt.Errorf("%w: issuer %q lacks keyUsage keyCertSign", ErrUntrusted, name)
	case issuer.MaxPathLen >= 0 && len(path)-1 > issuer.MaxPathLen:
		// path[1:] are the intermediate CAs below this issuer.
		return fmt.Errorf("%w: issuer %q allows %d intermediates below it, path has %d", ErrUntrusted, name, issuer.MaxPathLen, len(path)-1)
	case len(issuer.ExtKeyUsage)+len(issuer.UnknownExtKeyUsage) > 0 && v.usage != x509.ExtKeyUsageAny && !allowsUsage(issuer.ExtKeyUsage, v.usage):
		return fmt.Errorf("%w: issuer %q is not allowed %s", ErrUntrusted, name, usageName(v.usage))
	}
	return path[len(path)-1].checkSignedBy(issuer.Certificate)
}

func (v *verifier) checkCommon(c *parsedCert) error {
	name := c.Subject.CommonName
	if v.now.Before(c.NotBefore) {
		return fmt.Errorf("%w: %q is not valid before %s", ErrExpired, name, c.NotBefore.Format(time.RFC3339))
	}
	if v.now.After(c.NotAfter) {
		return fmt.Errorf("%w: %q expired at %s", ErrExpired, name, c.NotAfter.Format(time.RFC3339))
	}
	if len(c.UnhandledCriticalExtensions) > 0 {
		return fmt.Errorf("%w: %q has unhandled critical extension %s", ErrUntrusted, name, c.UnhandledCriticalExtensions[0])
	}
	return nil
}

// issues reports whether issuer's name (and key identifier, when both are
// present) matches child's issuer.
func issues(issuer, child *parsedCert) bool {
	if !bytes.Equal(issuer.RawSubject, child.RawIssuer) {
		return false
	}
	if len(child.AuthorityKeyId) > 0 && len(issuer.SubjectKeyId) > 0 {
		return bytes.Equal(child.AuthorityKeyId, issuer.SubjectKeyId)
	}
	return true
}

func onPath(path []*parsedCert, c *parsedCert) bool {
	for _, p := range path {
		if bytes.Equal(p.Raw, c.Raw) {
			return true
		}
	}
	return false
}

func allowsUsage(have []x509.ExtKeyUsage, want x509.ExtKeyUsage) bool {
	for _, u := range have {
		if u == want || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}

func usageName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageServerAuth:
		return "serverAuth"
	case x509.ExtKeyUsageClientAuth:
		return "clientAuth"
	}
	return fmt.Sprintf("extended key usage %d", u)
}
