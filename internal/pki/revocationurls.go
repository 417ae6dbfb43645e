package pki

import (
	"encoding/asn1"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// This file puts the places where revocation is published into device
// certificates: CRL Distribution Points (RFC 5280 §4.2.1.13) and Authority
// Information Access (§4.2.2.1), both non-critical.

var (
	oidCRLDistributionPoints = asn1.ObjectIdentifier{2, 5, 29, 31}
	oidAuthorityInfoAccess   = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 1}
	oidAccessOCSP            = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1}
	oidAccessCAIssuers       = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 2}
)

// Paths under Config.RevocationBaseURL, the layout internal/revocation
// serves.
const (
	// CRLPath + name + ".crl" is a CA's CRL (CA.CRLName).
	CRLPath = "/crl/"
	// OCSPPath is the OCSP responder (RFC 6960 GET appends "/" and the
	// request; POST uses it as is).
	OCSPPath = "/ocsp"
	// CAIssuersPath + name + ".crt" is the DER certificate of the CA
	// named name, for clients that lack the issuing CA.
	CAIssuersPath = "/ca/"
)

// revocationURLs are the URLs a device certificate carries; all empty
// when the CA has no revocation base URL.
type revocationURLs struct {
	crl, ocsp, caIssuers string
}

// revocationURLs is where the issuing CA's revocation is published, from
// the configured base URL (checked by CheckRevocationBaseURL).
func (ca *CA) revocationURLs() revocationURLs {
	base := ca.cfg.RevocationBaseURL
	if base == "" {
		return revocationURLs{}
	}
	name := ca.CRLName()
	return revocationURLs{
		crl:       base + CRLPath + name + ".crl",
		ocsp:      base + ca.OCSPPath(),
		caIssuers: base + CAIssuersPath + name + ".crt",
	}
}

// OCSPPath is the path of the CA's OCSP responder under the revocation
// base URL: OCSPPath for a set's first CA (and a CA opened alone),
// OCSPPath + "/" + its name for the others. A GET request's base64 (of a
// DER SEQUENCE, so starting with "M") never begins with a CA name, which
// is lower case.
func (ca *CA) OCSPPath() string {
	if ca.cfg.member == "" {
		return OCSPPath
	}
	return OCSPPath + "/" + ca.cfg.member
}

// CRLURL is the URL of the issuing CA's CRL that device certificates
// carry, "" without a revocation base URL.
func (ca *CA) CRLURL() string { return ca.revocationURLs().crl }

// OCSPURL is the OCSP responder's URL that device certificates carry, ""
// without a revocation base URL.
func (ca *CA) OCSPURL() string { return ca.revocationURLs().ocsp }

// CheckRevocationBaseURL checks a revocation base URL and returns it
// without a trailing slash. It must be an absolute http:// URL: relying
// parties fetch CRLs and OCSP answers without TLS (both are signed, and
// RFC 5280 warns that https would need a revocation check of its own), and
// a certificate holds URIs as IA5String, so ASCII only, without user
// information, query or fragment.
func CheckRevocationBaseURL(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	for _, r := range raw {
		if r <= ' ' || r >= 0x7f {
			return "", errors.New("revocation base URL must be printable ASCII without spaces")
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("revocation base URL: %w", err)
	}
	switch {
	case u.Scheme != "http":
		return "", fmt.Errorf("revocation base URL %q must be an http:// URL (CRLs and OCSP answers are signed; relying parties fetch them without TLS)", raw)
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("revocation base URL %q has no host", raw)
	case u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#"):
		return "", fmt.Errorf("revocation base URL %q must have no user, query or fragment", raw)
	}
	return strings.TrimRight(raw, "/"), nil
}

type distributionPoint struct {
	Name distributionPointName `asn1:"optional,tag:0"`
}

// distributionPointName is the fullName choice, [0] IMPLICIT GeneralNames.
type distributionPointName struct {
	FullName []asn1.RawValue `asn1:"optional,tag:0"`
}

type accessDescription struct {
	Method   asn1.ObjectIdentifier
	Location asn1.RawValue
}

// uriName is a uniformResourceIdentifier GeneralName, [6] IA5String.
func uriName(u string) asn1.RawValue {
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte(u)}
}

// crlDistributionPoints is the extension's value for one CRL URL, nil for
// none.
func (r revocationURLs) crlDistributionPoints() []distributionPoint {
	if r.crl == "" {
		return nil
	}
	return []distributionPoint{{Name: distributionPointName{FullName: []asn1.RawValue{uriName(r.crl)}}}}
}

// authorityInfoAccess is the extension's value: the OCSP responder, then
// the issuing CA's certificate; nil for neither.
func (r revocationURLs) authorityInfoAccess() []accessDescription {
	var out []accessDescription
	if r.ocsp != "" {
		out = append(out, accessDescription{oidAccessOCSP, uriName(r.ocsp)})
	}
	if r.caIssuers != "" {
		out = append(out, accessDescription{oidAccessCAIssuers, uriName(r.caIssuers)})
	}
	return out
}
