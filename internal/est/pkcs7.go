package est

import (
	"encoding/asn1"
	"errors"
	"fmt"
)

// PKCS #7 / CMS (RFC 5652) "certs-only" messages: a SignedData with no
// content, no digest algorithms and no signers, whose certificates field
// carries a chain. EST returns every certificate this way (RFC 7030 §4.1.3,
// §4.2.3); nothing here signs or verifies anything.

var (
	oidData       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
)

// CertsOnly encodes the DER certificates certs, in the order given, as a
// degenerate SignedData ContentInfo (DER).
func CertsOnly(certs [][]byte) ([]byte, error) {
	if len(certs) == 0 {
		return nil, errors.New("est: a certs-only message needs at least one certificate")
	}
	var set []byte
	for i, c := range certs {
		// Each must be one whole DER SEQUENCE, or the SET would be
		// garbage a client cannot parse.
		var v asn1.RawValue
		rest, err := asn1.Unmarshal(c, &v)
		if err != nil || len(rest) != 0 || v.Tag != asn1.TagSequence || v.Class != asn1.ClassUniversal {
			return nil, fmt.Errorf("est: certificate %d is not one DER SEQUENCE", i)
		}
		set = append(set, c...)
	}
	emptySet := asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true}
	signedData := struct {
		Version          int
		DigestAlgorithms asn1.RawValue
		EncapContentInfo struct{ ContentType asn1.ObjectIdentifier }
		Certificates     asn1.RawValue
		SignerInfos      asn1.RawValue
	}{
		Version:          1,
		DigestAlgorithms: emptySet,
		Certificates:     asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: set},
		SignerInfos:      emptySet,
	}
	signedData.EncapContentInfo.ContentType = oidData
	sd, err := asn1.Marshal(signedData)
	if err != nil {
		return nil, fmt.Errorf("est: encode SignedData: %w", err)
	}
	ci, err := asn1.Marshal(struct {
		ContentType asn1.ObjectIdentifier
		Content     asn1.RawValue
	}{oidSignedData, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: sd}})
	if err != nil {
		return nil, fmt.Errorf("est: encode ContentInfo: %w", err)
	}
	return ci, nil
}

// ParseCertsOnly returns the DER certificates of a certs-only message
// (CertsOnly's output, or any SignedData's certificates field), in order,
// for a client reading an EST answer. It parses structure only.
func ParseCertsOnly(der []byte) ([][]byte, error) {
	var ci struct {
		ContentType asn1.ObjectIdentifier
		Content     asn1.RawValue `asn1:"explicit,tag:0"`
	}
	rest, err := asn1.Unmarshal(der, &ci)
	if err != nil || len(rest) != 0 || !ci.ContentType.Equal(oidSignedData) {
		return nil, errors.New("est: not a PKCS #7 SignedData ContentInfo")
	}
	var sd struct {
		Version          int
		DigestAlgorithms asn1.RawValue
		EncapContentInfo asn1.RawValue
		Certificates     asn1.RawValue `asn1:"optional,tag:0"`
		Rest             asn1.RawValue `asn1:"optional"`
	}
	if _, err := asn1.Unmarshal(ci.Content.Bytes, &sd); err != nil {
		return nil, fmt.Errorf("est: SignedData: %w", err)
	}
	var certs [][]byte
	for b := sd.Certificates.Bytes; len(b) > 0; {
		var v asn1.RawValue
		next, err := asn1.Unmarshal(b, &v)
		if err != nil {
			return nil, fmt.Errorf("est: certificate %d: %w", len(certs), err)
		}
		certs = append(certs, v.FullBytes)
		b = next
	}
	if len(certs) == 0 {
		return nil, errors.New("est: the message carries no certificate")
	}
	return certs, nil
}
