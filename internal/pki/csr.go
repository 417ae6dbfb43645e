package pki

import (
	"crypto"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// MaxCSR bounds the DER of a certificate request: an ML-DSA-87 request
// (2,592-byte key, 4,627-byte signature) is under 8 KiB.
const MaxCSR = 16 << 10

// maxCommonName is RFC 5280's ub-common-name.
const maxCommonName = 64

// CSR is a parsed PKCS #10 certificate request whose self-signature has
// been verified. The CA takes only the key from it: the subject and any
// requested extensions are informative, the profile decides the rest.
type CSR struct {
	Subject   pkix.Name
	PublicKey crypto.PublicKey
	Suite     sigalg.ID
	// SPKI is the canonical DER SubjectPublicKeyInfo of PublicKey.
	SPKI []byte
	// ChallengePassword is the PKCS #9 challengePassword attribute's
	// text, empty without one (csrattr.go).
	ChallengePassword string
}

// certificationRequest is RFC 2986's CertificationRequest.
type certificationRequest struct {
	Info               asn1.RawValue
	SignatureAlgorithm algorithmIdentifier
	Signature          asn1.BitString
}

// certificationRequestInfo is RFC 2986's CertificationRequestInfo; the
// attributes are [0] IMPLICIT SET OF Attribute.
type certificationRequestInfo struct {
	Version    int
	Subject    asn1.RawValue
	PublicKey  asn1.RawValue
	Attributes []asn1.RawValue `asn1:"tag:0"`
}

// ParseCSR parses a DER PKCS #10 request of any sigalg suite and verifies
// its self-signature, which proves possession of the private key. The key
// must be in canonical form and not weak (sigalg.ParsePublicKey), the
// signature algorithm must be the key's own suite with absent parameters,
// and nothing may follow the request. Errors wrap ErrMalformedCSR or
// ErrCSRSignature.
func ParseCSR(der []byte) (*CSR, error) {
	if len(der) > MaxCSR {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrMalformedCSR, len(der), MaxCSR)
	}
	var req certificationRequest
	if rest, err := asn1.Unmarshal(der, &req); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("%w: not a DER CertificationRequest", ErrMalformedCSR)
	}
	if req.Info.Class != asn1.ClassUniversal || req.Info.Tag != asn1.TagSequence {
		return nil, fmt.Errorf("%w: CertificationRequestInfo is not a SEQUENCE", ErrMalformedCSR)
	}
	var info certificationRequestInfo
	if rest, err := asn1.Unmarshal(req.Info.FullBytes, &info); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("%w: malformed CertificationRequestInfo", ErrMalformedCSR)
	}
	if info.Version != 0 {
		return nil, fmt.Errorf("%w: version %d, want 0", ErrMalformedCSR, info.Version)
	}
	for _, attr := range info.Attributes {
		if attr.Class != asn1.ClassUniversal || attr.Tag != asn1.TagSequence {
			return nil, fmt.Errorf("%w: attribute is not a SEQUENCE", ErrMalformedCSR)
		}
	}
	challengePassword, err := challengePasswordOf(info.Attributes)
	if err != nil {
		return nil, err
	}
	var rdns pkix.RDNSequence
	if rest, err := asn1.Unmarshal(info.Subject.FullBytes, &rdns); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("%w: malformed subject", ErrMalformedCSR)
	}
	pub, err := sigalg.ParsePublicKey(info.PublicKey.FullBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedCSR, err)
	}
	suite, err := sigalg.SuiteOf(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedCSR, err)
	}
	alg := req.SignatureAlgorithm
	if !alg.Algorithm.Equal(suite.OID()) || len(alg.Parameters.FullBytes) != 0 {
		return nil, fmt.Errorf("%w: signature algorithm %s does not match the %s key", ErrMalformedCSR, alg.Algorithm, suite.ID())
	}
	if req.Signature.BitLength%8 != 0 {
		return nil, fmt.Errorf("%w: partial-byte signature", ErrMalformedCSR)
	}
	if err := suite.Verify(pub, req.Info.FullBytes, req.Signature.Bytes); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCSRSignature, err)
	}
	csr := &CSR{PublicKey: pub, Suite: suite.ID(), SPKI: append([]byte(nil), info.PublicKey.FullBytes...),
		ChallengePassword: challengePassword}
	csr.Subject.FillFromRDNSequence(&rdns)
	return csr, nil
}

// CreateCSR makes a DER PKCS #10 request for key, of any sigalg suite,
// with subject CN=commonName (no subject if commonName is empty) and no
// attributes, signed by key. key may be an opaque crypto.Signer. Like
// every request it makes, it parses the result with ParseCSR, so a key the
// key policy refuses (sigalg.CheckPublicKey) gets no request.
func CreateCSR(key crypto.Signer, commonName string) ([]byte, error) {
	return CreateCSRWith(key, CSROptions{CommonName: commonName})
}

// CreateCSRWith makes a DER PKCS #10 request for key, as CreateCSR, with
// the subject and attributes opts asks for.
func CreateCSRWith(key crypto.Signer, opts CSROptions) ([]byte, error) {
	commonName := opts.CommonName
	if err := checkText(commonName, maxCommonName); err != nil {
		return nil, fmt.Errorf("create csr: common name: %w", err)
	}
	var attrs []asn1.RawValue
	if opts.ChallengePassword != "" {
		attr, err := challengePasswordAttribute(opts.ChallengePassword)
		if err != nil {
			return nil, fmt.Errorf("create csr: %w", err)
		}
		attrs = append(attrs, attr)
	}
	suite, err := sigalg.SuiteOf(key.Public())
	if err != nil {
		return nil, fmt.Errorf("create csr: %w", err)
	}
	spki, err := sigalg.MarshalPublicKey(key.Public())
	if err != nil {
		return nil, fmt.Errorf("create csr: %w", err)
	}
	var subject pkix.Name
	if commonName != "" {
		subject.CommonName = commonName
	}
	name, err := encodeName(subject)
	if err != nil {
		return nil, fmt.Errorf("create csr: %w", err)
	}
	info, err := asn1.Marshal(certificationRequestInfo{
		Subject:    asn1.RawValue{FullBytes: name},
		PublicKey:  asn1.RawValue{FullBytes: spki},
		Attributes: attrs,
	})
	if err != nil {
		return nil, fmt.Errorf("create csr: %w", err)
	}
	sig, err := sigalg.Sign(key, info)
	if err != nil {
		return nil, fmt.Errorf("create csr: %w", err)
	}
	der, err := asn1.Marshal(certificationRequest{
		Info:               asn1.RawValue{FullBytes: info},
		SignatureAlgorithm: algorithmIdentifier{Algorithm: suite.OID()},
		Signature:          asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)},
	})
	if err != nil {
		return nil, fmt.Errorf("create csr: %w", err)
	}
	if _, err := ParseCSR(der); err != nil {
		return nil, fmt.Errorf("create csr: the request does not verify: %w", err)
	}
	return der, nil
}

// checkText refuses text that is too long, not UTF-8, or has control
// characters, for names that end up in certificates and logs.
func checkText(s string, maxLen int) error {
	if len(s) > maxLen {
		return fmt.Errorf("%d bytes exceeds %d", len(s), maxLen)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("not UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("control character %U", r)
		}
	}
	return nil
}
