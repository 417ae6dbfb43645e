package pki

import (
	"encoding/asn1"
	"fmt"
)

// The PKCS #9 challengePassword attribute (RFC 2985 §5.4.1) of a
// certificate request. The onboarding protocol carries its binding of a
// request to one exchange in it (docs/protocol.md); for the CA it is text
// the request's key signed, nothing more.

// oidChallengePassword is pkcs-9-at-challengePassword.
var oidChallengePassword = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 7}

// MaxChallengePassword is RFC 2985's ub-challengePassword.
const MaxChallengePassword = 255

// csrAttribute is RFC 2986's Attribute: a type and a SET OF values.
type csrAttribute struct {
	Type   asn1.ObjectIdentifier
	Values []asn1.RawValue `asn1:"set"`
}

// CSROptions is what a request says besides its key.
type CSROptions struct {
	// CommonName is the subject's CN; empty for no subject.
	CommonName string
	// ChallengePassword, if not empty, is sent as the challengePassword
	// attribute: a PrintableString when its characters allow, otherwise a
	// UTF8String.
	ChallengePassword string
}

// challengePasswordAttribute is the DER Attribute carrying pw.
func challengePasswordAttribute(pw string) (asn1.RawValue, error) {
	if err := checkText(pw, MaxChallengePassword); err != nil {
		return asn1.RawValue{}, fmt.Errorf("challenge password: %w", err)
	}
	tag := asn1.TagUTF8String
	if isPrintable(pw) {
		tag = asn1.TagPrintableString
	}
	der, err := asn1.Marshal(csrAttribute{Type: oidChallengePassword,
		Values: []asn1.RawValue{{Class: asn1.ClassUniversal, Tag: tag, Bytes: []byte(pw)}}})
	if err != nil {
		return asn1.RawValue{}, fmt.Errorf("challenge password: %w", err)
	}
	return asn1.RawValue{FullBytes: der}, nil
}

// challengePasswordOf finds the challengePassword among a request's
// attributes: empty if there is none. The attribute must hold exactly one
// PrintableString or UTF8String of valid text, and appear at most once;
// any other attribute must be an Attribute and is otherwise ignored (the
// CA's profile decides the certificate, not the request).
func challengePasswordOf(attrs []asn1.RawValue) (string, error) {
	pw, seen := "", false
	for _, raw := range attrs {
		var attr csrAttribute
		if rest, err := asn1.Unmarshal(raw.FullBytes, &attr); err != nil || len(rest) != 0 || len(attr.Values) == 0 {
			return "", fmt.Errorf("%w: malformed attribute", ErrMalformedCSR)
		}
		if !attr.Type.Equal(oidChallengePassword) {
			continue
		}
		if seen || len(attr.Values) != 1 {
			return "", fmt.Errorf("%w: more than one challengePassword", ErrMalformedCSR)
		}
		v := attr.Values[0]
		if v.Class != asn1.ClassUniversal || v.IsCompound ||
			(v.Tag != asn1.TagPrintableString && v.Tag != asn1.TagUTF8String) {
			return "", fmt.Errorf("%w: challengePassword is not a PrintableString or UTF8String", ErrMalformedCSR)
		}
		if err := checkText(string(v.Bytes), MaxChallengePassword); err != nil || len(v.Bytes) == 0 ||
			(v.Tag == asn1.TagPrintableString && !isPrintable(string(v.Bytes))) {
			return "", fmt.Errorf("%w: challengePassword is not valid text", ErrMalformedCSR)
		}
		pw, seen = string(v.Bytes), true
	}
	return pw, nil
}

// isPrintable reports whether s is in ASN.1 PrintableString's alphabet.
func isPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == ' ', c == '\'', c == '(', c == ')', c == '+', c == ',', c == '-', c == '.', c == '/', c == ':', c == '=', c == '?':
		default:
			return false
		}
	}
	return true
}
