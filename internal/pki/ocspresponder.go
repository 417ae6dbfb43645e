package pki

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"slices"
	"time"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// KeyOCSPResponder is the name of the delegated OCSP responder's key in
// the key manager that holds the CA's keys.
const KeyOCSPResponder = "ocsp-responder"

// MaxOCSPResponderValidity bounds a delegated responder certificate's
// lifetime. It carries id-pkix-ocsp-nocheck, so nothing can revoke it:
// a short life is what limits the harm of a stolen responder key (RFC
// 6960 §4.2.2.2.1).
const MaxOCSPResponderValidity = 30 * 24 * time.Hour

// IssueOCSPResponder signs a delegated OCSP responder certificate for pub
// with the issuing CA: subject O=<CA name>, CN=<CA name> OCSP Responder,
// keyUsage digitalSignature (critical), extKeyUsage id-kp-OCSPSigning,
// id-pkix-ocsp-nocheck (clients do not ask about the responder's own
// status), basicConstraints cA FALSE (critical), key identifiers, and a
// validity of at most MaxOCSPResponderValidity. The key may be of any
// suite; the CA's suite is the natural choice.
func (ca *CA) IssueOCSPResponder(ctx context.Context, pub crypto.PublicKey, validity time.Duration) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("issue OCSP responder certificate: %w", err)
	}
	if validity > MaxOCSPResponderValidity {
		return nil, fmt.Errorf("issue OCSP responder certificate: %w: validity %v exceeds %v", ErrInvalidRequest, validity, MaxOCSPResponderValidity)
	}
	t, err := ocspResponderTemplate(ca, pub, validity)
	if err != nil {
		return nil, fmt.Errorf("issue OCSP responder certificate: %w", err)
	}
	der, err := signWithNoCheck(t, ca.issuingSigner)
	if err != nil {
		return nil, fmt.Errorf("issue OCSP responder certificate: %w", err)
	}
	return der, nil
}

func ocspResponderTemplate(ca *CA, pub crypto.PublicKey, validity time.Duration) (*template, error) {
	if pub == nil {
		return nil, fmt.Errorf("%w: no public key", ErrInvalidRequest)
	}
	spki, err := checkedSPKI(pub)
	if err != nil {
		return nil, err
	}
	subject, err := caName(ca.cfg.Name, "OCSP Responder")
	if err != nil {
		return nil, err
	}
	t := &template{issuer: ca.issuing.RawSubject, subject: subject, spki: spki,
		keyUsage:       []int{kuDigitalSignature},
		extKeyUsage:    []asn1.ObjectIdentifier{oidOCSPSigning},
		authorityKeyID: ca.issuing.SubjectKeyId,
	}
	if t.notBefore, t.notAfter, err = validityWindow(ca.cfg.Now(), validity, ca.issuing); err != nil {
		return nil, err
	}
	if t.serial, err = newSerial(ca.random); err != nil {
		return nil, err
	}
	return t, nil
}

// signWithNoCheck is sign for the one profile with an extension the
// shared builder does not make: it takes the builder's TBSCertificate,
// appends id-pkix-ocsp-nocheck (value NULL, not critical), and signs that,
// so every other field stays the builder's.
func signWithNoCheck(t *template, issuer crypto.Signer) ([]byte, error) {
	suite, err := sigalg.SuiteOf(issuer.Public())
	if err != nil {
		return nil, err
	}
	der, err := encodeTBS(t, suite.OID())
	if err != nil {
		return nil, err
	}
	var tbs tbsCertificate
	if err := ocspUnmarshal(der, &tbs); err != nil {
		return nil, fmt.Errorf("re-read certificate: %w", err)
	}
	tbs.Extensions = append(tbs.Extensions, pkix.Extension{Id: oidOCSPNoCheck, Value: asn1.NullBytes})
	if der, err = asn1.Marshal(tbs); err != nil {
		return nil, fmt.Errorf("encode certificate: %w", err)
	}
	sig, err := sigalg.Sign(issuer, der)
	if err != nil {
		return nil, err
	}
	if err := suite.Verify(issuer.Public(), der, sig); err != nil {
		return nil, fmt.Errorf("the signer's signature does not verify: %w", err)
	}
	out, err := asn1.Marshal(certificate{
		TBS:                asn1.RawValue{FullBytes: der},
		SignatureAlgorithm: algorithmIdentifier{Algorithm: suite.OID()},
		Signature:          asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)},
	})
	if err != nil {
		return nil, fmt.Errorf("encode certificate: %w", err)
	}
	return out, nil
}

// checkDelegatedResponder checks that responder may sign OCSP responses
// for issuer's certificates (RFC 6960 §4.2.2.2): issued and signed by
// issuer, not a CA, id-kp-OCSPSigning in its extKeyUsage, and
// digitalSignature in its keyUsage if it has one. anyExtendedKeyUsage does
// not make a responder, or every certificate of the CA could answer for
// the others. Its validity is the
// caller's to check, at the time that matters to the caller.
func checkDelegatedResponder(responder, issuer *parsedCert) error {
	name := responder.Subject.CommonName
	switch {
	case !issues(issuer, responder):
		return fmt.Errorf("%w: responder %q is not issued by %q", ErrUntrusted, name, issuer.Subject.CommonName)
	case responder.IsCA:
		return fmt.Errorf("%w: responder %q is a CA", ErrUntrusted, name)
	case !slices.Contains(responder.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning):
		return fmt.Errorf("%w: responder %q lacks extKeyUsage id-kp-OCSPSigning", ErrUntrusted, name)
	case responder.KeyUsage != 0 && responder.KeyUsage&x509.KeyUsageDigitalSignature == 0:
		return fmt.Errorf("%w: responder %q lacks keyUsage digitalSignature", ErrUntrusted, name)
	case len(responder.UnhandledCriticalExtensions) > 0:
		return fmt.Errorf("%w: responder %q has unhandled critical extension %s", ErrUntrusted, name, responder.UnhandledCriticalExtensions[0])
	}
	return responder.checkSignedBy(issuer.Certificate)
}
