package pki

import (
	"crypto"
	"crypto/sha1" // #nosec G505 -- the byKey responder ID is SHA-1 by definition (RFC 6960 §4.2.1).
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"time"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// OCSPResponseStatus is the outcome of an OCSP request (RFC 6960 §4.2.1).
// Only OCSPSuccessful responses are signed; the others are the bare status.
type OCSPResponseStatus int

// The response statuses. 4 is not used by RFC 6960.
const (
	OCSPSuccessful       OCSPResponseStatus = 0
	OCSPMalformedRequest OCSPResponseStatus = 1
	OCSPInternalError    OCSPResponseStatus = 2
	OCSPTryLater         OCSPResponseStatus = 3
	OCSPSigRequired      OCSPResponseStatus = 5
	OCSPUnauthorized     OCSPResponseStatus = 6
)

func (s OCSPResponseStatus) String() string {
	switch s {
	case OCSPSuccessful:
		return "successful"
	case OCSPMalformedRequest:
		return "malformedRequest"
	case OCSPInternalError:
		return "internalError"
	case OCSPTryLater:
		return "tryLater"
	case OCSPSigRequired:
		return "sigRequired"
	case OCSPUnauthorized:
		return "unauthorized"
	}
	return fmt.Sprintf("OCSPResponseStatus(%d)", int(s))
}

// OCSPCertStatus is a certificate's status in a SingleResponse.
type OCSPCertStatus int

// The certificate statuses (RFC 6960 §2.2).
const (
	OCSPGood OCSPCertStatus = iota
	OCSPRevoked
	OCSPUnknown
)

func (s OCSPCertStatus) String() string {
	switch s {
	case OCSPGood:
		return "good"
	case OCSPRevoked:
		return "revoked"
	case OCSPUnknown:
		return "unknown"
	}
	return fmt.Sprintf("OCSPCertStatus(%d)", int(s))
}

// OCSPSingleResponse is the status of one certificate.
type OCSPSingleResponse struct {
	CertID OCSPCertID
	Status OCSPCertStatus
	// RevokedAt and Reason are set for OCSPRevoked only. Reason is RFC
	// 5280's CRLReason (ReasonKeyCompromise, …); 0 (unspecified) is left
	// out of the response, as RFC 5280 §5.3.1 asks of CRLs. A certificate
	// on hold is OCSPRevoked with ReasonCertificateHold, which a later
	// response may lift (RFC 6960 §2.2).
	RevokedAt time.Time
	Reason    int
	// ThisUpdate is when the status was known to be correct; NextUpdate,
	// when newer information will be available (zero: left out).
	ThisUpdate, NextUpdate time.Time
}

type ocspResponseASN struct {
	Status asn1.Enumerated
	Bytes  ocspResponseBytesASN `asn1:"optional,explicit,tag:0"`
}

type ocspErrorResponseASN struct {
	Status asn1.Enumerated
}

type ocspResponseBytesASN struct {
	ResponseType asn1.ObjectIdentifier
	Response     []byte
}

type ocspBasicResponseASN struct {
	TBS                asn1.RawValue
	SignatureAlgorithm algorithmIdentifier
	Signature          asn1.BitString
	Certs              []asn1.RawValue `asn1:"optional,explicit,tag:0"`
}

// ocspResponseDataASN leaves the version out: v1 is the DEFAULT, which DER
// does not encode.
type ocspResponseDataASN struct {
	Version     int `asn1:"optional,explicit,tag:0,default:0"`
	ResponderID asn1.RawValue
	ProducedAt  time.Time `asn1:"generalized"`
	Responses   []ocspSingleResponseASN
	Extensions  []pkix.Extension `asn1:"optional,explicit,tag:1"`
}

type ocspSingleResponseASN struct {
	CertID     asn1.RawValue
	Status     asn1.RawValue
	ThisUpdate time.Time        `asn1:"generalized"`
	NextUpdate time.Time        `asn1:"generalized,optional,explicit,tag:0"`
	Extensions []pkix.Extension `asn1:"optional,explicit,tag:1"`
}

// ocspRevokedInfoASN: a zero Reason (unspecified) is omitted, being the
// zero value of an optional field.
type ocspRevokedInfoASN struct {
	RevocationTime time.Time       `asn1:"generalized"`
	Reason         asn1.Enumerated `asn1:"optional,explicit,tag:0"`
}

// OCSPErrorResponse is the unsigned OCSPResponse for a status other than
// successful (RFC 6960 §2.3): no responseBytes, nothing to sign.
func OCSPErrorResponse(status OCSPResponseStatus) []byte {
	der, err := asn1.Marshal(ocspErrorResponseASN{Status: asn1.Enumerated(status)})
	if err != nil {
		// An ENUMERATED in a SEQUENCE always encodes.
		panic(fmt.Sprintf("pki: encode OCSP status: %v", err))
	}
	return der
}

// OCSPSigner signs OCSP responses about the certificates of one issuing
// CA, with a delegated responder certificate (NewOCSPSigner) or the CA's
// own key (CA.OCSPSigner). It is safe for concurrent use.
type OCSPSigner struct {
	issuer      *parsedCert
	hashes      []ocspIssuerHash
	key         crypto.Signer
	suite       sigalg.Suite
	responderID asn1.RawValue
	certs       []asn1.RawValue // the responder certificate, if delegated
	signerCert  *parsedCert
}

// NewOCSPSigner makes a signer for a delegated responder: responderDER
// must be issued by issuerDER, name id-kp-OCSPSigning in its extKeyUsage
// and hold key's public key. The response carries the certificate, so a
// client that trusts the issuer can check it.
func NewOCSPSigner(issuerDER, responderDER []byte, key crypto.Signer) (*OCSPSigner, error) {
	issuer, err := parseCert(issuerDER)
	if err != nil {
		return nil, fmt.Errorf("OCSP signer: issuer: %w", err)
	}
	responder, err := parseCert(responderDER)
	if err != nil {
		return nil, fmt.Errorf("OCSP signer: responder: %w", err)
	}
	if err := checkDelegatedResponder(responder, issuer); err != nil {
		return nil, fmt.Errorf("OCSP signer: %w", err)
	}
	spki, err := sigalg.MarshalPublicKey(key.Public())
	if err != nil || string(spki) != string(responder.RawSubjectPublicKeyInfo) {
		return nil, fmt.Errorf("%w: OCSP signer: the key is not the responder certificate's", ErrInvalidRequest)
	}
	s, err := newOCSPSigner(issuer, responder, key)
	if err != nil {
		return nil, err
	}
	s.certs = []asn1.RawValue{{FullBytes: clone(responder.Raw)}}
	return s, nil
}

// OCSPSigner returns a signer that signs responses with the issuing CA's
// own key (RFC 6960 §4.2.2.2, first case). Prefer a delegated responder:
// it keeps the CA key out of the request path.
func (ca *CA) OCSPSigner() (*OCSPSigner, error) {
	return newOCSPSigner(ca.issuing, ca.issuing, ca.issuingSigner)
}

func newOCSPSigner(issuer, signerCert *parsedCert, key crypto.Signer) (*OCSPSigner, error) {
	hashes, err := ocspIssuerHashes(issuer.Certificate)
	if err != nil {
		return nil, fmt.Errorf("OCSP signer: %w", err)
	}
	suite, err := sigalg.SuiteOf(key.Public())
	if err != nil {
		return nil, fmt.Errorf("OCSP signer: %w", err)
	}
	id, err := ocspResponderKeyID(signerCert.RawSubjectPublicKeyInfo)
	if err != nil {
		return nil, fmt.Errorf("OCSP signer: %w", err)
	}
	return &OCSPSigner{issuer: issuer, hashes: hashes, key: key, suite: suite, responderID: id, signerCert: signerCert}, nil
}

// ocspResponderKeyID is ResponderID byKey: [2] EXPLICIT the SHA-1 of the
// responder's subjectPublicKey BIT STRING value.
func ocspResponderKeyID(spki []byte) (asn1.RawValue, error) {
	bits, err := ocspKeyBits(spki)
	if err != nil {
		return asn1.RawValue{}, err
	}
	sum := sha1.Sum(bits) // #nosec G401 -- a name fixed by RFC 6960, see the import.
	inner, err := asn1.Marshal(sum[:])
	if err != nil {
		return asn1.RawValue{}, err
	}
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, IsCompound: true, Bytes: inner}, nil
}

// NotAfter is when the signing certificate expires; the responder must
// be rotated before then.
func (s *OCSPSigner) NotAfter() time.Time { return s.signerCert.NotAfter }

// Certificate is the certificate whose key signs: the delegated
// responder's, or the issuing CA's.
func (s *OCSPSigner) Certificate() *x509.Certificate { return s.signerCert.Certificate }

// Issuer is the certificate of the CA the signer speaks for.
func (s *OCSPSigner) Issuer() *x509.Certificate { return s.issuer.Certificate }

// Covers reports whether id names a certificate of the signer's issuer. A
// CertID hashed with another algorithm than SHA-1 or SHA-256 does not.
func (s *OCSPSigner) Covers(id OCSPCertID) bool { return ocspMatchesIssuer(id, s.hashes) }

// Sign makes a signed, successful OCSPResponse (id-pkix-ocsp-basic) with
// one SingleResponse per entry of responses, the nonce echoed when it is
// not nil, producedAt, and the responder certificate if delegated. Every
// CertID must be covered by the signer. The signature is checked before
// the response is returned, as certificates are (see sign).
func (s *OCSPSigner) Sign(producedAt time.Time, responses []OCSPSingleResponse, nonce []byte) ([]byte, error) {
	tbs, err := s.encodeResponseData(producedAt, responses, nonce)
	if err != nil {
		return nil, fmt.Errorf("sign OCSP response: %w", err)
	}
	sig, err := sigalg.Sign(s.key, tbs)
	if err != nil {
		return nil, fmt.Errorf("sign OCSP response: %w", err)
	}
	if err := s.suite.Verify(s.key.Public(), tbs, sig); err != nil {
		return nil, fmt.Errorf("sign OCSP response: the signer's signature does not verify: %w", err)
	}
	basic, err := asn1.Marshal(ocspBasicResponseASN{
		TBS:                asn1.RawValue{FullBytes: tbs},
		SignatureAlgorithm: algorithmIdentifier{Algorithm: s.suite.OID()},
		Signature:          asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)},
		Certs:              s.certs,
	})
	if err != nil {
		return nil, fmt.Errorf("encode OCSP response: %w", err)
	}
	der, err := asn1.Marshal(ocspResponseASN{
		Status: asn1.Enumerated(OCSPSuccessful),
		Bytes:  ocspResponseBytesASN{ResponseType: oidOCSPBasic, Response: basic},
	})
	if err != nil {
		return nil, fmt.Errorf("encode OCSP response: %w", err)
	}
	return der, nil
}

func (s *OCSPSigner) encodeResponseData(producedAt time.Time, responses []OCSPSingleResponse, nonce []byte) ([]byte, error) {
	if len(responses) == 0 || len(responses) > MaxOCSPRequests {
		return nil, fmt.Errorf("%d responses, want 1 to %d", len(responses), MaxOCSPRequests)
	}
	data := ocspResponseDataASN{ResponderID: s.responderID, ProducedAt: ocspTime(producedAt)}
	for i, r := range responses {
		if !s.Covers(r.CertID) || len(r.CertID.raw) == 0 {
			return nil, fmt.Errorf("response %d: %w: the CertID names another issuer", i, ErrInvalidRequest)
		}
		single, err := ocspEncodeSingle(r)
		if err != nil {
			return nil, fmt.Errorf("response %d: %w", i, err)
		}
		data.Responses = append(data.Responses, single)
	}
	if nonce != nil {
		ext, err := ocspNonceExtension(nonce)
		if err != nil {
			return nil, err
		}
		data.Extensions = []pkix.Extension{ext}
	}
	return asn1.Marshal(data)
}

func ocspEncodeSingle(r OCSPSingleResponse) (ocspSingleResponseASN, error) {
	out := ocspSingleResponseASN{
		CertID:     asn1.RawValue{FullBytes: r.CertID.raw},
		ThisUpdate: ocspTime(r.ThisUpdate),
		NextUpdate: ocspTime(r.NextUpdate),
	}
	if !r.NextUpdate.IsZero() && r.NextUpdate.Before(r.ThisUpdate) {
		return out, fmt.Errorf("%w: nextUpdate before thisUpdate", ErrInvalidRequest)
	}
	// CertStatus is a CHOICE of IMPLICIT tags: good [0] NULL,
	// revoked [1] RevokedInfo, unknown [2] NULL.
	switch r.Status {
	case OCSPGood:
		out.Status = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0}
	case OCSPUnknown:
		out.Status = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2}
	case OCSPRevoked:
		if !ocspValidReason(r.Reason) || r.RevokedAt.IsZero() {
			return out, fmt.Errorf("%w: revoked with reason %d at %v", ErrInvalidRequest, r.Reason, r.RevokedAt)
		}
		info, err := asn1.Marshal(ocspRevokedInfoASN{RevocationTime: ocspTime(r.RevokedAt), Reason: asn1.Enumerated(r.Reason)})
		if err != nil {
			return out, err
		}
		var seq asn1.RawValue
		if err := ocspUnmarshal(info, &seq); err != nil {
			return out, err
		}
		out.Status = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, IsCompound: true, Bytes: seq.Bytes}
	default:
		return out, fmt.Errorf("%w: certificate status %v", ErrInvalidRequest, r.Status)
	}
	return out, nil
}

// ocspValidReason is RFC 5280's CRLReason: 0 to 10 without 7, which is
// unassigned.
func ocspValidReason(r int) bool { return r >= 0 && r <= 10 && r != 7 }

// ocspTime is t as a DER GeneralizedTime wants it: UTC, whole seconds. The
// zero time stays zero so that an optional field is left out.
func ocspTime(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Second)
}
