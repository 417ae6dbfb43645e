package pki

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"net"
	"time"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// This file is the one certificate builder every profile and every suite
// goes through. crypto/x509.CreateCertificate cannot sign with ML-DSA nor
// encode an ML-DSA key, and two builders would drift apart, so classical
// certificates are built here as well and checked against crypto/x509 and
// OpenSSL in the tests.

// Object identifiers of the extensions and purposes the profiles use
// (RFC 5280 §4.2).
var (
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtKeyUsage      = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidSubjectKeyID     = asn1.ObjectIdentifier{2, 5, 29, 14}
	oidAuthorityKeyID   = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidSubjectAltName   = asn1.ObjectIdentifier{2, 5, 29, 17}

	oidServerAuth = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 1}
	oidClientAuth = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 2}
)

// KeyUsage bit positions (RFC 5280 §4.2.1.3).
const (
	kuDigitalSignature = 0
	kuKeyCertSign      = 5
	kuCRLSign          = 6
)

// SerialSize is the length in bytes of every serial number this package
// issues, as a DER INTEGER's contents.
const SerialSize = 16

// template is everything that varies between certificates. Names are DER
// so that an issuer name is copied byte for byte from the issuer's
// certificate, which is how chains are matched.
type template struct {
	serial         [SerialSize]byte
	issuer         []byte // DER Name
	subject        []byte // DER Name
	notBefore      time.Time
	notAfter       time.Time
	spki           []byte // DER SubjectPublicKeyInfo, canonical
	isCA           bool
	maxPathLen     int   // CAs only
	keyUsage       []int // bit positions
	extKeyUsage    []asn1.ObjectIdentifier
	authorityKeyID []byte // nil for a self-signed root
	uris           []string
	dnsNames       []string
	ips            []net.IP
	revocation     revocationURLs // device certificates only; empty: no CDP or AIA
}

type algorithmIdentifier struct {
	Algorithm  asn1.ObjectIdentifier
	Parameters asn1.RawValue `asn1:"optional"`
}

type validity struct {
	NotBefore, NotAfter time.Time
}

// tbsCertificate is RFC 5280's TBSCertificate for version 3 without the
// unique identifiers, which RFC 5280 says conforming CAs must not use.
type tbsCertificate struct {
	Version      int `asn1:"explicit,tag:0"`
	SerialNumber asn1.RawValue
	Signature    algorithmIdentifier
	Issuer       asn1.RawValue
	Validity     validity
	Subject      asn1.RawValue
	PublicKey    asn1.RawValue
	Extensions   []pkix.Extension `asn1:"explicit,tag:3"`
}

type certificate struct {
	TBS                asn1.RawValue
	SignatureAlgorithm algorithmIdentifier
	Signature          asn1.BitString
}

type basicConstraints struct {
	IsCA       bool `asn1:"optional"`
	MaxPathLen int  `asn1:"optional,default:-1"`
}

type authorityKeyID struct {
	ID []byte `asn1:"optional,tag:0"`
}

// encodeTBS is the DER TBSCertificate of t, to be signed with the suite
// whose signature OID is sigOID. Every suite's AlgorithmIdentifier has
// absent parameters: ecdsa-with-SHA256 (RFC 5758), Ed25519 (RFC 8410) and
// ML-DSA (RFC 9881).
func encodeTBS(t *template, sigOID asn1.ObjectIdentifier) ([]byte, error) {
	exts, err := t.extensions()
	if err != nil {
		return nil, err
	}
	tbs := tbsCertificate{
		Version:      2, // v3
		SerialNumber: asn1.RawValue{Tag: asn1.TagInteger, Bytes: t.serial[:]},
		Signature:    algorithmIdentifier{Algorithm: sigOID},
		Issuer:       asn1.RawValue{FullBytes: t.issuer},
		// encoding/asn1 writes UTCTime through 2049 and GeneralizedTime
		// from 2050, as RFC 5280 §4.1.2.5 requires, given UTC times
		// without fractions.
		Validity:   validity{NotBefore: t.notBefore.UTC().Truncate(time.Second), NotAfter: t.notAfter.UTC().Truncate(time.Second)},
		Subject:    asn1.RawValue{FullBytes: t.subject},
		PublicKey:  asn1.RawValue{FullBytes: t.spki},
		Extensions: exts,
	}
	der, err := asn1.Marshal(tbs)
	if err != nil {
		return nil, fmt.Errorf("encode certificate: %w", err)
	}
	return der, nil
}

func (t *template) extensions() ([]pkix.Extension, error) {
	type extension struct {
		oid      asn1.ObjectIdentifier
		critical bool
		value    any
	}
	bc := basicConstraints{IsCA: t.isCA, MaxPathLen: -1}
	if t.isCA {
		bc.MaxPathLen = t.maxPathLen
	}
	// basicConstraints is critical in every certificate, so that no
	// verifier can mistake a device or server certificate for a CA.
	list := []extension{
		{oidBasicConstraints, true, bc},
		{oidKeyUsage, true, keyUsageBits(t.keyUsage)},
	}
	if len(t.extKeyUsage) > 0 {
		list = append(list, extension{oidExtKeyUsage, false, t.extKeyUsage})
	}
	list = append(list, extension{oidSubjectKeyID, false, subjectKeyID(t.spki)})
	if t.authorityKeyID != nil {
		list = append(list, extension{oidAuthorityKeyID, false, authorityKeyID{ID: t.authorityKeyID}})
	}
	if san := t.subjectAltNames(); len(san) > 0 {
		// Not critical: every certificate has a non-empty subject.
		list = append(list, extension{oidSubjectAltName, false, san})
	}
	if cdp := t.revocation.crlDistributionPoints(); cdp != nil {
		list = append(list, extension{oidCRLDistributionPoints, false, cdp})
	}
	if aia := t.revocation.authorityInfoAccess(); aia != nil {
		list = append(list, extension{oidAuthorityInfoAccess, false, aia})
	}
	exts := make([]pkix.Extension, 0, len(list))
	for _, e := range list {
		der, err := asn1.Marshal(e.value)
		if err != nil {
			return nil, fmt.Errorf("encode extension %s: %w", e.oid, err)
		}
		exts = append(exts, pkix.Extension{Id: e.oid, Critical: e.critical, Value: der})
	}
	return exts, nil
}

// subjectAltNames are GeneralNames: uniformResourceIdentifier [6],
// dNSName [2] (both IA5String) and iPAddress [7] (4 or 16 octets).
func (t *template) subjectAltNames() []asn1.RawValue {
	var names []asn1.RawValue
	general := func(tag int, b []byte) {
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tag, Bytes: b})
	}
	for _, u := range t.uris {
		general(6, []byte(u))
	}
	for _, d := range t.dnsNames {
		general(2, []byte(d))
	}
	for _, ip := range t.ips {
		if v4 := ip.To4(); v4 != nil {
			ip = v4
		}
		general(7, ip)
	}
	return names
}

// keyUsageBits is the KeyUsage BIT STRING with the given bits set; DER
// drops trailing zero bits, so the length ends at the highest bit set.
func keyUsageBits(bits []int) asn1.BitString {
	var bs asn1.BitString
	for _, bit := range bits {
		for len(bs.Bytes) <= bit/8 {
			bs.Bytes = append(bs.Bytes, 0)
		}
		bs.Bytes[bit/8] |= 0x80 >> (bit % 8)
		bs.BitLength = max(bs.BitLength, bit+1)
	}
	return bs
}

// subjectKeyID is RFC 7093 method 1: the leftmost 160 bits of the SHA-256
// of the subjectPublicKey BIT STRING's value. RFC 5280's example method uses
// SHA-1; the identifier only has to be unique per key, and SHA-256 keeps
// SHA-1 out of the code base.
func subjectKeyID(spki []byte) []byte {
	var info struct {
		Algorithm asn1.RawValue
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spki, &info); err != nil {
		// The SPKI came from sigalg.MarshalPublicKey and always parses;
		// hash the whole encoding rather than fail.
		info.PublicKey.Bytes = spki
	}
	sum := sha256.Sum256(info.PublicKey.Bytes)
	return sum[:20]
}

// sign builds, signs and assembles the certificate t with the issuer's key,
// and checks the signature with the issuer's public key before returning it,
// so that a faulty signer (an HSM, a bit flip) cannot hand out a
// certificate that does not verify.
func sign(t *template, issuer crypto.Signer) ([]byte, error) {
	suite, err := sigalg.SuiteOf(issuer.Public())
	if err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	tbs, err := encodeTBS(t, suite.OID())
	if err != nil {
		return nil, err
	}
	sig, err := sigalg.Sign(issuer, tbs)
	if err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	if err := suite.Verify(issuer.Public(), tbs, sig); err != nil {
		return nil, fmt.Errorf("sign certificate: the signer's signature does not verify: %w", err)
	}
	der, err := asn1.Marshal(certificate{
		TBS:                asn1.RawValue{FullBytes: tbs},
		SignatureAlgorithm: algorithmIdentifier{Algorithm: suite.OID()},
		Signature:          asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)},
	})
	if err != nil {
		return nil, fmt.Errorf("encode certificate: %w", err)
	}
	return der, nil
}

// encodeName is the DER Name of n. encoding/asn1 writes PrintableString
// where the value allows it and UTF8String otherwise, as crypto/x509 does.
func encodeName(n pkix.Name) ([]byte, error) {
	der, err := asn1.Marshal(n.ToRDNSequence())
	if err != nil {
		return nil, fmt.Errorf("encode name: %w", err)
	}
	return der, nil
}
