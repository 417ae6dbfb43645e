package pki

import (
	"context"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// This file builds RFC 5280 v2 certificate revocation lists for the
// issuing CA, for every suite. crypto/x509.CreateRevocationList cannot sign
// with ML-DSA, so the TBSCertList is built with encoding/asn1 like every
// certificate (cert.go) and signed through the key manager's signer with
// sigalg.Sign: ML-DSA CRLs follow RFC 9881's rules for certificates (the
// ML-DSA OID with absent parameters, pure ML-DSA over the DER TBSCertList).

// ErrMalformedCRL reports a CRL that does not parse, is too large, or
// breaks the profile: no nextUpdate or CRL number, a critical extension
// this package does not process, a serial or reason it cannot hold.
var ErrMalformedCRL = errors.New("malformed CRL")

// RFC 5280 CRLReason codes (§5.3.1) the platform uses.
const (
	ReasonUnspecified          = 0
	ReasonKeyCompromise        = 1
	ReasonSuperseded           = 4
	ReasonCessationOfOperation = 5
	ReasonCertificateHold      = 6
)

// MaxCRLDER bounds the CRLs ParseCRL accepts: 100,000 entries with reason
// codes take about 4 MiB.
const MaxCRLDER = 64 << 20

// maxCRLNumberBits keeps a CRL number within RFC 5280's 20 octets.
const maxCRLNumberBits = 159

var (
	oidCRLNumber  = asn1.ObjectIdentifier{2, 5, 29, 20}
	oidReasonCode = asn1.ObjectIdentifier{2, 5, 29, 21}
)

// CRLEntry is one revoked certificate.
type CRLEntry struct {
	Serial    [SerialSize]byte
	RevokedAt time.Time
	// Reason is an RFC 5280 CRLReason (ReasonKeyCompromise, …); 0
	// (unspecified) puts no reasonCode extension in the entry, as RFC 5280
	// recommends.
	Reason int
}

// CRLRequest is what CreateCRL signs.
type CRLRequest struct {
	// Number is the CRL number: non-negative, at most 20 octets, and
	// larger than that of every CRL the CA issued before (the caller's
	// job: see internal/revocation).
	Number *big.Int
	// ThisUpdate is the CRL's issue time; NextUpdate, after it, is when
	// the next CRL will be issued at the latest.
	ThisUpdate, NextUpdate time.Time
	// Entries are the revoked certificates, none revoked after
	// ThisUpdate, no serial twice.
	Entries []CRLEntry
}

// validReason reports whether r is a CRLReason a full CRL may carry: RFC
// 5280 leaves 7 unused, allows removeFromCRL (8) only in delta CRLs, and
// aACompromise (10) concerns attribute certificates.
func validReason(r int) bool {
	return r >= ReasonUnspecified && r <= 6 || r == 9 // privilegeWithdrawn
}

// CRLName names the issuing CA's CRL in URLs (<base>/crl/<name>.crl):
// "issuing-" and the first 8 bytes of its subject key identifier in hex. A
// name derived from the key keeps each issuing CA's URL its own, so that
// certificates of a replaced issuing CA still find the CRL signed by
// theirs.
func (ca *CA) CRLName() string {
	ski := ca.issuing.SubjectKeyId
	return "issuing-" + hex.EncodeToString(ski[:min(8, len(ski))])
}

// CreateCRL signs a v2 CRL with the issuing CA's key: issuer the issuing
// CA's subject, thisUpdate and nextUpdate, one entry per revoked
// certificate (with a reasonCode extension unless the reason is 0), and the
// non-critical CRL number and authority key identifier extensions. It
// returns the DER CRL after checking its signature with the issuing CA's
// public key, as sign does for certificates. An invalid request is
// ErrInvalidRequest.
func (ca *CA) CreateCRL(ctx context.Context, req CRLRequest) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("create CRL: %w", err)
	}
	if err := req.check(); err != nil {
		return nil, fmt.Errorf("create CRL: %w", err)
	}
	suite, err := sigalg.SuiteOf(ca.issuingSigner.Public())
	if err != nil {
		return nil, fmt.Errorf("create CRL: %w", err)
	}
	tbs, err := encodeTBSCertList(req, ca.issuing.RawSubject, ca.issuing.SubjectKeyId, suite.OID())
	if err != nil {
		return nil, fmt.Errorf("create CRL: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("create CRL: %w", err)
	}
	sig, err := sigalg.Sign(ca.issuingSigner, tbs)
	if err != nil {
		return nil, fmt.Errorf("sign CRL: %w", err)
	}
	if err := suite.Verify(ca.issuingSigner.Public(), tbs, sig); err != nil {
		return nil, fmt.Errorf("sign CRL: the signer's signature does not verify: %w", err)
	}
	der, err := asn1.Marshal(certificate{
		TBS:                asn1.RawValue{FullBytes: tbs},
		SignatureAlgorithm: algorithmIdentifier{Algorithm: suite.OID()},
		Signature:          asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)},
	})
	if err != nil {
		return nil, fmt.Errorf("encode CRL: %w", err)
	}
	return der, nil
}

func (req *CRLRequest) check() error {
	switch {
	case req.Number == nil || req.Number.Sign() < 0 || req.Number.BitLen() > maxCRLNumberBits:
		return fmt.Errorf("%w: CRL number must be a non-negative integer of at most 20 octets", ErrInvalidRequest)
	case req.ThisUpdate.IsZero() || req.ThisUpdate.UTC().Year() < 1:
		return fmt.Errorf("%w: no thisUpdate", ErrInvalidRequest)
	case req.NextUpdate.UTC().Year() > 9999:
		return fmt.Errorf("%w: nextUpdate after the year 9999", ErrInvalidRequest)
	case !req.NextUpdate.After(req.ThisUpdate):
		return fmt.Errorf("%w: nextUpdate %s is not after thisUpdate %s", ErrInvalidRequest,
			req.NextUpdate.Format(time.RFC3339), req.ThisUpdate.Format(time.RFC3339))
	}
	seen := make(map[[SerialSize]byte]struct{}, len(req.Entries))
	for _, e := range req.Entries {
		switch {
		case e.Serial == [SerialSize]byte{}:
			return fmt.Errorf("%w: revoked serial zero", ErrInvalidRequest)
		case e.RevokedAt.IsZero() || e.RevokedAt.UTC().Year() < 1 || e.RevokedAt.After(req.ThisUpdate):
			return fmt.Errorf("%w: serial %x: revocation time %s is not before thisUpdate", ErrInvalidRequest, e.Serial, e.RevokedAt.Format(time.RFC3339))
		case !validReason(e.Reason):
			return fmt.Errorf("%w: serial %x: reason %d is not a CRLReason of a full CRL", ErrInvalidRequest, e.Serial, e.Reason)
		}
		if _, dup := seen[e.Serial]; dup {
			return fmt.Errorf("%w: serial %x listed twice", ErrInvalidRequest, e.Serial)
		}
		seen[e.Serial] = struct{}{}
	}
	return nil
}

// tbsCertList is RFC 5280's TBSCertList, version v2. RevokedCertificates
// is the pre-encoded SEQUENCE OF entries, absent (as RFC 5280 requires)
// when nothing is revoked.
type tbsCertList struct {
	Version             int
	Signature           algorithmIdentifier
	Issuer              asn1.RawValue
	ThisUpdate          time.Time
	NextUpdate          time.Time
	RevokedCertificates asn1.RawValue    `asn1:"optional"`
	Extensions          []pkix.Extension `asn1:"explicit,tag:0"`
}

// encodeTBSCertList is the DER TBSCertList of req for the issuer with DER
// name issuer and key identifier keyID, to be signed with sigOID.
func encodeTBSCertList(req CRLRequest, issuer, keyID []byte, sigOID asn1.ObjectIdentifier) ([]byte, error) {
	revoked, err := encodeRevoked(req.Entries)
	if err != nil {
		return nil, err
	}
	number, err := asn1.Marshal(req.Number)
	if err != nil {
		return nil, fmt.Errorf("encode CRL number: %w", err)
	}
	aki, err := asn1.Marshal(authorityKeyID{ID: keyID})
	if err != nil {
		return nil, fmt.Errorf("encode authority key identifier: %w", err)
	}
	tbs := tbsCertList{
		Version:   1, // v2
		Signature: algorithmIdentifier{Algorithm: sigOID},
		Issuer:    asn1.RawValue{FullBytes: issuer},
		// UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280
		// §5.1.2.4), given UTC whole seconds.
		ThisUpdate:          crlTime(req.ThisUpdate),
		NextUpdate:          crlTime(req.NextUpdate),
		RevokedCertificates: revoked,
		Extensions: []pkix.Extension{
			{Id: oidAuthorityKeyID, Value: aki},
			{Id: oidCRLNumber, Value: number},
		},
	}
	der, err := asn1.Marshal(tbs)
	if err != nil {
		return nil, fmt.Errorf("encode CRL: %w", err)
	}
	return der, nil
}

func crlTime(t time.Time) time.Time { return t.UTC().Truncate(time.Second) }

// revokedEntry is one element of revokedCertificates, as encoding/asn1
// would write it: the reference the hand-written encoder is tested
// against.
type revokedEntry struct {
	Serial     *big.Int
	RevokedAt  time.Time
	Extensions []pkix.Extension `asn1:"optional"`
}

// reasonExtensions holds the DER crlEntryExtensions (a SEQUENCE OF one
// reasonCode extension) of each reason but unspecified.
var reasonExtensions = func() map[int][]byte {
	m := map[int][]byte{}
	for r := range 11 {
		if r != ReasonUnspecified && validReason(r) {
			v, _ := asn1.Marshal(asn1.Enumerated(r))
			m[r], _ = asn1.Marshal([]pkix.Extension{{Id: oidReasonCode, Value: v}})
		}
	}
	return m
}()

// encodeRevoked is the DER SEQUENCE OF revoked entries, or a zero
// RawValue (absent) for none. It writes DER by hand: encoding/asn1's
// reflection made a CRL of 100,000 entries take seconds and 100 MB of
// garbage. Serials are minimal positive INTEGERs, so every non-zero 16-byte
// serial round-trips through ParseCRL; times are UTCTime through 2049 and
// GeneralizedTime from 2050, as encoding/asn1 writes them.
func encodeRevoked(entries []CRLEntry) (asn1.RawValue, error) {
	if len(entries) == 0 {
		return asn1.RawValue{}, nil
	}
	// An entry is at most 2 + 19 (serial) + 17 (time) + reason bytes.
	body := make([]byte, 0, len(entries)*(40+len(reasonExtensions[ReasonKeyCompromise])))
	for _, e := range entries {
		ext := reasonExtensions[e.Reason]
		mark := len(body)
		body = append(body, 0x30, 0) // SEQUENCE, length patched below
		body = appendSerial(body, e.Serial)
		body = appendTime(body, e.RevokedAt)
		body = append(body, ext...)
		n := len(body) - mark - 2
		if n > 127 {
			return asn1.RawValue{}, fmt.Errorf("encode revoked certificates: entry of %d bytes", n)
		}
		body[mark+1] = byte(n)
	}
	der := appendLength(append(make([]byte, 0, len(body)+6), 0x30), len(body))
	return asn1.RawValue{FullBytes: append(der, body...)}, nil
}

// appendSerial appends serial as a DER INTEGER: leading zero bytes
// dropped, and one zero byte put back when the first remaining byte has its
// top bit set, so that the number stays positive.
func appendSerial(b []byte, serial [SerialSize]byte) []byte {
	v := serial[:]
	for len(v) > 1 && v[0] == 0 {
		v = v[1:]
	}
	if v[0]&0x80 != 0 {
		b = append(b, asn1.TagInteger, byte(len(v)+1), 0)
	} else {
		b = append(b, asn1.TagInteger, byte(len(v)))
	}
	return append(b, v...)
}

// appendTime appends t in UTC, whole seconds, as RFC 5280 §5.1.2.6 wants:
// UTCTime YYMMDDHHMMSSZ for 1950–2049, GeneralizedTime otherwise.
func appendTime(b []byte, t time.Time) []byte {
	t = crlTime(t)
	if y := t.Year(); y >= 1950 && y < 2050 {
		return t.AppendFormat(append(b, asn1.TagUTCTime, 13), "060102150405Z")
	}
	return t.AppendFormat(append(b, asn1.TagGeneralizedTime, 15), "20060102150405Z")
}

// appendLength appends a DER length.
func appendLength(b []byte, n int) []byte {
	if n < 0x80 {
		return append(b, byte(n))
	}
	var octets []byte
	for v := n; v > 0; v >>= 8 {
		octets = append([]byte{byte(v)}, octets...)
	}
	return append(append(b, 0x80|byte(len(octets))), octets...)
}
