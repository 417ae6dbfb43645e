package est

import (
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
)

// MaxBody bounds a request body: a base64 PKCS #10 request for an ECDSA or
// Ed25519 key is a few hundred bytes, an ML-DSA-87 one under 11 KiB.
const MaxBody = 64 << 10

// ErrMalformed reports a body that is not one base64 DER PKCS #10 request.
var ErrMalformed = errors.New("malformed EST request")

// DecodeCSR decodes an EST request body (RFC 7030 §4.2.1 with RFC 8951):
// base64 of a DER CertificationRequest, with or without line breaks
// (CR, LF, spaces and tabs are skipped). It returns the DER, one ASN.1
// SEQUENCE with nothing after it; the signature and contents are the
// onboarding service's to check.
func DecodeCSR(body []byte) ([]byte, error) {
	if len(body) > MaxBody {
		return nil, fmt.Errorf("%w: body of %d bytes, at most %d", ErrMalformed, len(body), MaxBody)
	}
	compact := make([]byte, 0, len(body))
	for _, b := range body {
		switch b {
		case '\r', '\n', ' ', '\t':
		default:
			compact = append(compact, b)
		}
	}
	if len(compact) == 0 {
		return nil, fmt.Errorf("%w: empty body; send the base64 of a DER PKCS #10 request", ErrMalformed)
	}
	der := make([]byte, base64.StdEncoding.DecodedLen(len(compact)))
	n, err := base64.StdEncoding.Strict().Decode(der, compact)
	if err != nil {
		return nil, fmt.Errorf("%w: the body is not base64 (%v); send the base64 of a DER PKCS #10 request", ErrMalformed, err)
	}
	der = der[:n]
	var v asn1.RawValue
	rest, err := asn1.Unmarshal(der, &v)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: the decoded body is not DER (%v)", ErrMalformed, err)
	case len(rest) != 0:
		return nil, fmt.Errorf("%w: %d bytes after the request", ErrMalformed, len(rest))
	case v.Class != asn1.ClassUniversal || v.Tag != asn1.TagSequence || !v.IsCompound:
		return nil, fmt.Errorf("%w: the decoded body is not a PKCS #10 SEQUENCE", ErrMalformed)
	}
	return der, nil
}
