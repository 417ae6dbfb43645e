// Package cmp owns Hallmark's Lightweight CMP front door (RFC 4210 as
// updated by RFC 9480, profiled by RFC 9483; HTTP transfer per RFC 6712):
// the PKIMessage and CRMF (RFC 4211) encodings, written with
// encoding/asn1, the checks of a message's protection and proof of
// possession, and the HTTP binding. What a device may be issued is not
// decided here: the package turns a verified message into a call of the
// platform's use cases (Enrolment) and their answer back into a message.
package cmp

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"time"
)

// MaxMessage bounds a PKIMessage the door reads: an ML-DSA-87 request
// with its self-signed certificate is under 16 KiB.
const MaxMessage = 64 << 10

// ErrMalformed is a message that is not a PKIMessage this door reads.
var ErrMalformed = errors.New("malformed CMP message")

// Body types (PKIBody's CHOICE tags, RFC 4210 section 5.1.2).
const (
	TypeIR       = 0
	TypeIP       = 1
	TypeCR       = 2
	TypeCP       = 3
	TypeP10CR    = 4
	TypeKUR      = 7
	TypeKUP      = 8
	TypeRR       = 11
	TypeRP       = 12
	TypePKIConf  = 19
	TypeGenM     = 21
	TypeGenP     = 22
	TypeError    = 23
	TypeCertConf = 24
)

var bodyNames = map[int]string{TypeIR: "ir", TypeIP: "ip", TypeCR: "cr", TypeCP: "cp", TypeP10CR: "p10cr",
	TypeKUR: "kur", TypeKUP: "kup", TypeRR: "rr", TypeRP: "rp", TypePKIConf: "pkiConf", TypeGenM: "genm",
	TypeGenP: "genp", TypeError: "error", TypeCertConf: "certConf"}

// BodyName is the RFC 4210 name of a body type, for logs and errors.
func BodyName(t int) string {
	if n, ok := bodyNames[t]; ok {
		return n
	}
	return fmt.Sprintf("body [%d]", t)
}

// Object identifiers.
var (
	// OIDCACerts is id-it-caCerts (RFC 9480 section 2.3).
	OIDCACerts = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 4, 17}
	// OIDImplicitConfirm is id-it-implicitConfirm (RFC 4210 section 5.1.1.1).
	OIDImplicitConfirm = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 4, 13}
)

// Header is PKIHeader. Raw keeps a parsed header's DER, which protection
// is computed over; Marshal reuses it when set.
type Header struct {
	Raw           asn1.RawContent
	PVNO          int
	Sender        asn1.RawValue            // GeneralName
	Recipient     asn1.RawValue            // GeneralName
	MessageTime   time.Time                `asn1:"generalized,explicit,tag:0,optional"`
	ProtectionAlg pkix.AlgorithmIdentifier `asn1:"explicit,tag:1,optional"`
	SenderKID     []byte                   `asn1:"explicit,tag:2,optional"`
	RecipKID      []byte                   `asn1:"explicit,tag:3,optional"`
	TransactionID []byte                   `asn1:"explicit,tag:4,optional"`
	SenderNonce   []byte                   `asn1:"explicit,tag:5,optional"`
	RecipNonce    []byte                   `asn1:"explicit,tag:6,optional"`
	FreeText      FreeText                 `asn1:"explicit,tag:7,optional"`
	GeneralInfo   []InfoTypeAndValue       `asn1:"explicit,tag:8,optional"`
}

// InfoTypeAndValue is RFC 4210's InfoTypeAndValue.
type InfoTypeAndValue struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue `asn1:"optional"`
}

// Message is a PKIMessage. Body is the PKIBody CHOICE as it arrived (or
// as built): its Tag is the body type and its Bytes the explicit tag's
// content.
type Message struct {
	Header     Header
	Body       asn1.RawValue
	Protection asn1.BitString  `asn1:"explicit,tag:0,optional"`
	ExtraCerts []asn1.RawValue `asn1:"explicit,tag:1,optional"`
}

// Type is the message's body type.
func (m *Message) Type() int { return m.Body.Tag }

// ProtectedPart is the DER that protection signs: SEQUENCE {header, body}.
func (m *Message) ProtectedPart() ([]byte, error) {
	h := m.Header.Raw
	if len(h) == 0 {
		var err error
		if h, err = asn1.Marshal(m.Header); err != nil {
			return nil, fmt.Errorf("encode header: %w", err)
		}
	}
	body := m.Body.FullBytes
	if len(body) == 0 {
		var err error
		if body, err = asn1.Marshal(m.Body); err != nil {
			return nil, fmt.Errorf("encode body: %w", err)
		}
	}
	return asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true,
		Bytes: append(append([]byte(nil), h...), body...)})
}

// Parse decodes one DER PKIMessage, refusing trailing data, a version
// other than 2 or 3 and a body that is not a context-specific explicit
// tag.
func Parse(der []byte) (*Message, error) {
	if len(der) > MaxMessage {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformed, len(der), MaxMessage)
	}
	var m Message
	rest, err := asn1.Unmarshal(der, &m)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(rest) > 0 {
		return nil, fmt.Errorf("%w: %d bytes after the message", ErrMalformed, len(rest))
	}
	if m.Header.PVNO != 2 && m.Header.PVNO != 3 {
		return nil, fmt.Errorf("%w: pvno %d (2 or 3 expected)", ErrMalformed, m.Header.PVNO)
	}
	if m.Body.Class != asn1.ClassContextSpecific || !m.Body.IsCompound {
		return nil, fmt.Errorf("%w: the body is not a PKIBody choice", ErrMalformed)
	}
	return &m, nil
}

// Marshal encodes m as DER.
func (m *Message) Marshal() ([]byte, error) {
	der, err := asn1.Marshal(*m)
	if err != nil {
		return nil, fmt.Errorf("encode PKIMessage: %w", err)
	}
	return der, nil
}

// NewBody wraps a body's DER content value in its CHOICE tag.
func NewBody(typ int, content any) (asn1.RawValue, error) {
	inner, err := asn1.Marshal(content)
	if err != nil {
		return asn1.RawValue{}, fmt.Errorf("encode %s: %w", BodyName(typ), err)
	}
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: typ, IsCompound: true, Bytes: inner}, nil
}

// Content is the body's single value, without its CHOICE tag.
func (m *Message) Content() ([]byte, error) {
	var v asn1.RawValue
	rest, err := asn1.Unmarshal(m.Body.Bytes, &v)
	if err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("%w: %s body", ErrMalformed, BodyName(m.Type()))
	}
	return v.FullBytes, nil
}

// ---- CRMF (RFC 4211) ----

// CertReqMsg is one CertReqMessages entry. POP is ProofOfPossession
// (CRMF uses implicit tags: signature [1] is POPOSigningKey's content).
type CertReqMsg struct {
	CertReq CertRequest
	POP     asn1.RawValue      `asn1:"optional"`
	RegInfo []InfoTypeAndValue `asn1:"optional"`
}

// CertRequest keeps its DER (Raw), which a signature POP signs.
type CertRequest struct {
	Raw          asn1.RawContent
	CertReqID    int
	CertTemplate asn1.RawValue
	Controls     []InfoTypeAndValue `asn1:"optional"`
}

// Template is what the door reads of a CertTemplate.
type Template struct {
	// Subject is the DER of the Name, nil if absent.
	Subject []byte
	// PublicKey is the DER SubjectPublicKeyInfo, nil if absent.
	PublicKey []byte
	// Issuer is the DER of the Name, nil if absent.
	Issuer []byte
	// Serial is the serialNumber's content octets, nil if absent.
	Serial []byte
}

// ParseTemplate reads a CertTemplate (a SEQUENCE of implicitly tagged
// optional fields).
func ParseTemplate(der []byte) (Template, error) {
	var seq asn1.RawValue
	if rest, err := asn1.Unmarshal(der, &seq); err != nil || len(rest) > 0 || seq.Tag != asn1.TagSequence || !seq.IsCompound {
		return Template{}, fmt.Errorf("%w: certTemplate", ErrMalformed)
	}
	var t Template
	for b := seq.Bytes; len(b) > 0; {
		var f asn1.RawValue
		var err error
		if b, err = asn1.Unmarshal(b, &f); err != nil || f.Class != asn1.ClassContextSpecific {
			return Template{}, fmt.Errorf("%w: certTemplate field", ErrMalformed)
		}
		switch f.Tag {
		case 1:
			t.Serial = f.Bytes
		case 3, 5: // Name is a CHOICE: its tag is explicit
			var name asn1.RawValue
			if rest, err := asn1.Unmarshal(f.Bytes, &name); err != nil || len(rest) > 0 || name.Tag != asn1.TagSequence {
				return Template{}, fmt.Errorf("%w: certTemplate name", ErrMalformed)
			}
			if f.Tag == 3 {
				t.Issuer = name.FullBytes
			} else {
				t.Subject = name.FullBytes
			}
		case 6:
			spki, err := asn1.Marshal(asn1.RawValue{Tag: asn1.TagSequence, IsCompound: true, Bytes: f.Bytes})
			if err != nil {
				return Template{}, fmt.Errorf("%w: certTemplate publicKey", ErrMalformed)
			}
			t.PublicKey = spki
		}
	}
	return t, nil
}

// POPOSigningKey is a signature proof of possession without
// poposkInput: the signature is over the DER of certReq.
type POPOSigningKey struct {
	Algorithm pkix.AlgorithmIdentifier
	Signature asn1.BitString
}

// SignaturePOP reads the signature POP of msg; a missing one, or one with
// poposkInput, is an error (RFC 4211 section 4.1: with a subject and a key
// in the template, poposkInput must be absent).
func (msg *CertReqMsg) SignaturePOP() (POPOSigningKey, error) {
	if msg.POP.Class != asn1.ClassContextSpecific || msg.POP.Tag != 1 || !msg.POP.IsCompound {
		return POPOSigningKey{}, fmt.Errorf("%w: no signature proof of possession", ErrMalformed)
	}
	var p POPOSigningKey
	seq, err := asn1.Marshal(asn1.RawValue{Tag: asn1.TagSequence, IsCompound: true, Bytes: msg.POP.Bytes})
	if err != nil {
		return p, err
	}
	if rest, err := asn1.Unmarshal(seq, &p); err != nil || len(rest) > 0 {
		return p, fmt.Errorf("%w: POPOSigningKey (poposkInput is not supported)", ErrMalformed)
	}
	return p, nil
}

// ParseCertReqMessages reads an ir, cr or kur body's content.
func ParseCertReqMessages(der []byte) ([]CertReqMsg, error) {
	var msgs []CertReqMsg
	if rest, err := asn1.Unmarshal(der, &msgs); err != nil || len(rest) > 0 || len(msgs) == 0 {
		return nil, fmt.Errorf("%w: CertReqMessages", ErrMalformed)
	}
	return msgs, nil
}

// ---- responses and the rest of the bodies ----

// PKIStatus values.
const (
	StatusAccepted       = 0
	StatusGrantedWithMod = 1
	StatusRejection      = 2
	StatusWaiting        = 3
)

// FailInfo bits (PKIFailureInfo, RFC 4210 and 9480).
const (
	FailBadAlg             = 0
	FailBadMessageCheck    = 1
	FailBadRequest         = 2
	FailBadTime            = 3
	FailBadCertID          = 4
	FailBadDataFormat      = 5
	FailWrongAuthority     = 6
	FailBadPOP             = 9
	FailCertRevoked        = 10
	FailBadRecipientNonce  = 13
	FailBadSenderNonce     = 18
	FailBadCertTemplate    = 19
	FailSignerNotTrusted   = 20
	FailTransactionIDInUse = 21
	FailUnsupportedVersion = 22
	FailNotAuthorized      = 23
	FailSystemUnavail      = 24
	FailSystemFailure      = 25
)

// FreeText is PKIFreeText, a SEQUENCE of UTF8String (encoding/asn1
// picks PrintableString for a Go string when it can).
type FreeText []asn1.RawValue

// NewFreeText is PKIFreeText of lines.
func NewFreeText(lines ...string) FreeText {
	var t FreeText
	for _, l := range lines {
		t = append(t, asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagUTF8String, Bytes: []byte(l)})
	}
	return t
}

// Strings is the text of t.
func (t FreeText) Strings() []string {
	var out []string
	for _, v := range t {
		out = append(out, string(v.Bytes))
	}
	return out
}

// StatusInfo is PKIStatusInfo.
type StatusInfo struct {
	Status       int
	StatusString FreeText       `asn1:"optional"`
	FailInfo     asn1.BitString `asn1:"optional"`
}

// Rejection is a rejecting StatusInfo with one failure bit and a text.
func Rejection(bit int, text string) StatusInfo {
	fi := asn1.BitString{Bytes: make([]byte, bit/8+1), BitLength: bit + 1}
	fi.Bytes[bit/8] |= 0x80 >> (bit % 8)
	return StatusInfo{Status: StatusRejection, StatusString: NewFreeText(text), FailInfo: fi}
}

// ErrorContent is ErrorMsgContent.
type ErrorContent struct {
	Status       StatusInfo
	ErrorCode    int      `asn1:"optional"`
	ErrorDetails FreeText `asn1:"optional"`
}

// CertRepMessage is ip, cp and kup's content.
type CertRepMessage struct {
	CAPubs   []asn1.RawValue `asn1:"explicit,tag:1,optional"`
	Response []CertResponse
}

// CertResponse is one certificate's answer.
type CertResponse struct {
	CertReqID        int
	Status           StatusInfo
	CertifiedKeyPair CertifiedKeyPair `asn1:"optional"`
}

// CertifiedKeyPair carries the certificate as CertOrEncCert's
// certificate [0], an explicit tag (CMP's module has explicit tags) that
// CertificateChoice builds: encoding/asn1 ignores tags on a RawValue
// given as FullBytes.
type CertifiedKeyPair struct {
	Certificate asn1.RawValue
}

// CertificateChoice is CertOrEncCert's certificate [0] around der.
func CertificateChoice(der []byte) asn1.RawValue {
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: der}
}

// CertStatus is one certConf entry.
type CertStatus struct {
	CertHash   []byte
	CertReqID  int
	StatusInfo StatusInfo               `asn1:"optional"`
	HashAlg    pkix.AlgorithmIdentifier `asn1:"explicit,tag:0,optional"`
}

// RevDetails is one rr entry.
type RevDetails struct {
	CertDetails     asn1.RawValue
	CRLEntryDetails []pkix.Extension `asn1:"optional"`
}

// RevRepContent is rp's content.
type RevRepContent struct {
	Status []StatusInfo
}
