package pki

import (
	"bytes"
	"crypto"
	"crypto/sha1" // #nosec G505 -- RFC 6960 CertIDs and byKey responder IDs use SHA-1 as names, not as signatures.
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
)

// This file is the request side of OCSP (RFC 6960): CertID, parsing an
// OCSPRequest, and creating one. golang.org/x/crypto/ocsp cannot sign with
// ML-DSA, and the responder must sign with every suite the CA has, so OCSP
// is built here with encoding/asn1 like the certificates are. The response
// side is in ocspresponse.go, its verifier in ocspverify.go, the delegated
// responder's certificate in ocspresponder.go.

// Errors callers branch on.
var (
	// ErrMalformedOCSPRequest reports an OCSPRequest that does not parse,
	// is too large, or breaks a rule of RFC 6960 or RFC 8954 (a nonce of
	// 0 or more than 32 octets, an unknown critical extension).
	ErrMalformedOCSPRequest = errors.New("malformed OCSP request")
	// ErrMalformedOCSPResponse reports an OCSPResponse that does not
	// parse or is too large.
	ErrMalformedOCSPResponse = errors.New("malformed OCSP response")
	// ErrOCSPRefused reports an OCSPResponse whose status is not
	// successful: the responder refused to answer.
	ErrOCSPRefused = errors.New("OCSP responder refused the request")
	// ErrOCSPNonceMismatch reports a response that does not echo the
	// request's nonce, so it may be a replay.
	ErrOCSPNonceMismatch = errors.New("OCSP response nonce does not match the request")
)

// Limits on what the OCSP parsers accept. A request for one certificate
// with a nonce is about 100 bytes; 16 of them with SHA-256 CertIDs stay
// under 2 KiB. A response signed with ML-DSA-87 that carries an ML-DSA-87
// responder certificate is under 16 KiB.
const (
	MaxOCSPRequestSize  = 4 << 10
	MaxOCSPRequests     = 16
	MaxOCSPResponseSize = 64 << 10
	// maxOCSPNonce and minOCSPNonce are RFC 8954's bounds.
	maxOCSPNonce = 32
	minOCSPNonce = 1
	// ocspMaxSerialOctets is RFC 5280's longest serial number.
	ocspMaxSerialOctets = 20
)

var (
	oidOCSPNonce      = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}
	oidOCSPBasic      = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}
	oidOCSPNoCheck    = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}
	oidOCSPSigning    = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 9}
	oidOCSPHashSHA1   = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidOCSPHashSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
)

// OCSPCertID names one certificate in OCSP: hashes of its issuer's name
// and key, and its serial number. The hash is SHA-1 (what OpenSSL and most
// clients send) or SHA-256; SHA-1 is only a name here, never a signature.
type OCSPCertID struct {
	HashAlgorithm  asn1.ObjectIdentifier
	IssuerNameHash []byte
	IssuerKeyHash  []byte
	// SerialNumber is the content of the DER INTEGER, as sent.
	SerialNumber []byte
	// raw is the DER CertID as received; a response echoes it byte for
	// byte, because clients compare CertIDs field by field.
	raw []byte
}

// Serial returns the serial number as this CA issues them, and false for a
// serial this CA cannot have issued (another length, or negative).
func (id OCSPCertID) Serial() (serial [SerialSize]byte, ok bool) {
	if len(id.SerialNumber) != SerialSize || id.SerialNumber[0]&0x80 != 0 {
		return serial, false
	}
	copy(serial[:], id.SerialNumber)
	return serial, true
}

// Raw is the DER encoding of the CertID.
func (id OCSPCertID) Raw() []byte { return clone(id.raw) }

// OCSPRequest is a parsed OCSPRequest. The optional requestor name and
// signature are not kept: this responder answers anyone, since the status
// of a certificate is public.
type OCSPRequest struct {
	CertIDs []OCSPCertID
	// Nonce is the id-pkix-ocsp-nonce value (RFC 8954), nil if absent.
	Nonce []byte
}

type ocspRequestASN struct {
	TBS       asn1.RawValue
	Signature asn1.RawValue `asn1:"optional,explicit,tag:0"`
}

type ocspTBSRequestASN struct {
	Version       int           `asn1:"optional,explicit,tag:0,default:0"`
	RequestorName asn1.RawValue `asn1:"optional,explicit,tag:1"`
	RequestList   []ocspSingleRequestASN
	Extensions    []pkix.Extension `asn1:"optional,explicit,tag:2"`
}

type ocspSingleRequestASN struct {
	CertID     asn1.RawValue
	Extensions []pkix.Extension `asn1:"optional,explicit,tag:0"`
}

type ocspCertIDASN struct {
	HashAlgorithm  pkix.AlgorithmIdentifier
	IssuerNameHash []byte
	IssuerKeyHash  []byte
	SerialNumber   asn1.RawValue
}

// ParseOCSPRequest parses a DER OCSPRequest (RFC 6960 §4.1) of at most
// MaxOCSPRequestSize bytes and MaxOCSPRequests CertIDs. Errors wrap
// ErrMalformedOCSPRequest; the responder answers them malformedRequest.
func ParseOCSPRequest(der []byte) (*OCSPRequest, error) {
	req, err := parseOCSPRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedOCSPRequest, err)
	}
	return req, nil
}

func parseOCSPRequest(der []byte) (*OCSPRequest, error) {
	if len(der) > MaxOCSPRequestSize {
		return nil, fmt.Errorf("%d bytes exceeds %d", len(der), MaxOCSPRequestSize)
	}
	var outer ocspRequestASN
	if err := ocspUnmarshal(der, &outer); err != nil {
		return nil, err
	}
	var tbs ocspTBSRequestASN
	if err := ocspUnmarshal(outer.TBS.FullBytes, &tbs); err != nil {
		return nil, fmt.Errorf("tbsRequest: %w", err)
	}
	if tbs.Version != 0 {
		return nil, fmt.Errorf("version %d, want v1 (0)", tbs.Version)
	}
	if n := len(tbs.RequestList); n == 0 || n > MaxOCSPRequests {
		return nil, fmt.Errorf("%d certificates asked for, want 1 to %d", n, MaxOCSPRequests)
	}
	req := &OCSPRequest{CertIDs: make([]OCSPCertID, 0, len(tbs.RequestList))}
	for i, r := range tbs.RequestList {
		id, err := parseCertID(r.CertID.FullBytes)
		if err != nil {
			return nil, fmt.Errorf("request %d: %w", i, err)
		}
		// No single-request extension is understood (the service
		// locator is for a proxy); RFC 6960 §4.4 says ignore them
		// unless critical.
		if _, err := ocspNonce(r.Extensions, false); err != nil {
			return nil, fmt.Errorf("request %d: %w", i, err)
		}
		req.CertIDs = append(req.CertIDs, id)
	}
	nonce, err := ocspNonce(tbs.Extensions, true)
	if err != nil {
		return nil, err
	}
	req.Nonce = nonce
	return req, nil
}

// ocspNonce returns the nonce among exts, if allowed, and refuses a
// duplicate extension or a critical one it does not understand.
func ocspNonce(exts []pkix.Extension, allowNonce bool) ([]byte, error) {
	var nonce []byte
	seen := make(map[string]bool, len(exts))
	for _, e := range exts {
		if seen[e.Id.String()] {
			return nil, fmt.Errorf("extension %s appears twice", e.Id)
		}
		seen[e.Id.String()] = true
		if !allowNonce || !e.Id.Equal(oidOCSPNonce) {
			if e.Critical {
				return nil, fmt.Errorf("unsupported critical extension %s", e.Id)
			}
			continue
		}
		if err := ocspUnmarshal(e.Value, &nonce); err != nil {
			return nil, fmt.Errorf("nonce: %w", err)
		}
		if len(nonce) < minOCSPNonce || len(nonce) > maxOCSPNonce {
			return nil, fmt.Errorf("nonce of %d octets, RFC 8954 allows %d to %d", len(nonce), minOCSPNonce, maxOCSPNonce)
		}
	}
	return nonce, nil
}

func parseCertID(der []byte) (OCSPCertID, error) {
	var a ocspCertIDASN
	if err := ocspUnmarshal(der, &a); err != nil {
		return OCSPCertID{}, fmt.Errorf("certID: %w", err)
	}
	if p := a.HashAlgorithm.Parameters.FullBytes; len(p) != 0 && !bytes.Equal(p, asn1.NullBytes) {
		return OCSPCertID{}, errors.New("certID: hash algorithm with parameters")
	}
	if err := ocspCheckSerial(a.SerialNumber); err != nil {
		return OCSPCertID{}, fmt.Errorf("certID: %w", err)
	}
	return OCSPCertID{
		HashAlgorithm:  a.HashAlgorithm.Algorithm,
		IssuerNameHash: a.IssuerNameHash,
		IssuerKeyHash:  a.IssuerKeyHash,
		SerialNumber:   a.SerialNumber.Bytes,
		raw:            clone(der),
	}, nil
}

// ocspCheckSerial accepts a minimally encoded INTEGER of at most 20 octets.
func ocspCheckSerial(v asn1.RawValue) error {
	b := v.Bytes
	switch {
	case v.Class != asn1.ClassUniversal || v.Tag != asn1.TagInteger || v.IsCompound:
		return errors.New("serial number is not an INTEGER")
	case len(b) == 0 || len(b) > ocspMaxSerialOctets+1 || (len(b) == ocspMaxSerialOctets+1 && b[0] != 0):
		return fmt.Errorf("serial number of %d octets", len(b))
	case len(b) > 1 && (b[0] == 0 && b[1] < 0x80 || b[0] == 0xff && b[1] >= 0x80):
		return errors.New("serial number not minimally encoded")
	}
	return nil
}

// ocspUnmarshal decodes exactly one DER value, with nothing after it.
func ocspUnmarshal(der []byte, v any) error {
	rest, err := asn1.Unmarshal(der, v)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("%d bytes after the value", len(rest))
	}
	return nil
}

// ocspIssuerHash are the CertID hashes of one issuer under one algorithm.
type ocspIssuerHash struct {
	alg        asn1.ObjectIdentifier
	name, key  []byte
	hashLength int
}

// ocspIssuerHashes computes the issuer's CertID hashes for SHA-1 and
// SHA-256: its DER subject, and the value of its subjectPublicKey BIT
// STRING (RFC 6960 §4.1.1).
func ocspIssuerHashes(issuer *x509.Certificate) ([]ocspIssuerHash, error) {
	key, err := ocspKeyBits(issuer.RawSubjectPublicKeyInfo)
	if err != nil {
		return nil, err
	}
	name1, key1 := sha1.Sum(issuer.RawSubject), sha1.Sum(key) // #nosec G401 -- CertID names, see the import.
	name256, key256 := sha256.Sum256(issuer.RawSubject), sha256.Sum256(key)
	return []ocspIssuerHash{
		{alg: oidOCSPHashSHA1, name: name1[:], key: key1[:], hashLength: sha1.Size},
		{alg: oidOCSPHashSHA256, name: name256[:], key: key256[:], hashLength: sha256.Size},
	}, nil
}

// ocspKeyBits is the content of an SPKI's subjectPublicKey BIT STRING.
func ocspKeyBits(spki []byte) ([]byte, error) {
	var info struct {
		Algorithm asn1.RawValue
		PublicKey asn1.BitString
	}
	if err := ocspUnmarshal(spki, &info); err != nil {
		return nil, fmt.Errorf("%w: subject public key info: %v", ErrMalformedCertificate, err)
	}
	return info.PublicKey.Bytes, nil
}

// ocspMatchesIssuer reports whether id names the issuer whose hashes are hs.
func ocspMatchesIssuer(id OCSPCertID, hs []ocspIssuerHash) bool {
	for _, h := range hs {
		if id.HashAlgorithm.Equal(h.alg) {
			return bytes.Equal(id.IssuerNameHash, h.name) && bytes.Equal(id.IssuerKeyHash, h.key)
		}
	}
	return false
}

// CreateOCSPRequest makes a DER OCSPRequest for the certificates with the
// given serials, all issued by issuer, with CertIDs hashed with hash
// (crypto.SHA1 or crypto.SHA256) and, if nonce is not nil, the nonce
// extension (1 to 32 octets). It is the project's own OCSP client, used for
// ML-DSA, which OpenSSL 3.0 cannot verify.
func CreateOCSPRequest(issuer *x509.Certificate, serials [][SerialSize]byte, hash crypto.Hash, nonce []byte) ([]byte, error) {
	if len(serials) == 0 || len(serials) > MaxOCSPRequests {
		return nil, fmt.Errorf("create OCSP request: %d serials, want 1 to %d", len(serials), MaxOCSPRequests)
	}
	hs, err := ocspIssuerHashes(issuer)
	if err != nil {
		return nil, fmt.Errorf("create OCSP request: %w", err)
	}
	var h ocspIssuerHash
	switch hash {
	case crypto.SHA1:
		h = hs[0]
	case crypto.SHA256:
		h = hs[1]
	default:
		return nil, fmt.Errorf("create OCSP request: hash %v, want SHA-1 or SHA-256", hash)
	}
	var tbs ocspTBSRequestASN
	for _, s := range serials {
		id, err := asn1.Marshal(ocspCertIDASN{
			HashAlgorithm:  pkix.AlgorithmIdentifier{Algorithm: h.alg, Parameters: asn1.RawValue{FullBytes: asn1.NullBytes}},
			IssuerNameHash: h.name, IssuerKeyHash: h.key,
			SerialNumber: asn1.RawValue{Tag: asn1.TagInteger, Bytes: s[:]},
		})
		if err != nil {
			return nil, fmt.Errorf("create OCSP request: %w", err)
		}
		tbs.RequestList = append(tbs.RequestList, ocspSingleRequestASN{CertID: asn1.RawValue{FullBytes: id}})
	}
	if nonce != nil {
		ext, err := ocspNonceExtension(nonce)
		if err != nil {
			return nil, fmt.Errorf("create OCSP request: %w", err)
		}
		tbs.Extensions = []pkix.Extension{ext}
	}
	raw, err := asn1.Marshal(tbs)
	if err != nil {
		return nil, fmt.Errorf("create OCSP request: %w", err)
	}
	der, err := asn1.Marshal(ocspRequestASN{TBS: asn1.RawValue{FullBytes: raw}})
	if err != nil {
		return nil, fmt.Errorf("create OCSP request: %w", err)
	}
	return der, nil
}

func ocspNonceExtension(nonce []byte) (pkix.Extension, error) {
	if len(nonce) < minOCSPNonce || len(nonce) > maxOCSPNonce {
		return pkix.Extension{}, fmt.Errorf("nonce of %d octets, want %d to %d", len(nonce), minOCSPNonce, maxOCSPNonce)
	}
	v, err := asn1.Marshal(nonce)
	if err != nil {
		return pkix.Extension{}, err
	}
	return pkix.Extension{Id: oidOCSPNonce, Value: v}, nil
}
