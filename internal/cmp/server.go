package cmp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Issued is a certificate the platform issued and the chain above it
// (issuing CA first), all DER.
type Issued struct {
	Certificate []byte
	Chain       [][]byte
}

// Devices is what the door needs of the platform's use cases. The door
// has verified every signature before it calls: the protection of the
// message and the proof of possession of the operational key.
type Devices interface {
	// Enrol onboards the device whose enrolment key is enrolmentSPKI
	// (its identity is the key's hash) with a certificate for
	// operationalSPKI, under the rules of the native onboarding.
	Enrol(ctx context.Context, o Origin, enrolmentSPKI, operationalSPKI []byte) (Issued, error)
	// Renew issues a new certificate for operationalSPKI to the device
	// that holds leaf, its current certificate.
	Renew(ctx context.Context, o Origin, leaf *x509.Certificate, operationalSPKI []byte) (Issued, error)
	// Revoke revokes leaf at its own holder's request, for reason (an
	// RFC 5280 CRLReason code).
	Revoke(ctx context.Context, o Origin, leaf *x509.Certificate, reason int) error
}

// ErrUnknownLabel is what Config.CACerts wraps for a label no product
// has.
var ErrUnknownLabel = errors.New("no product has this label")

// Origin is what the door knows of a request beyond its body: the client
// address the platform's rate limits and audit use, the product label of
// the URL it was posted to ("" for none), which the device's product must
// match, and, for Enrol, its transactionID and how long the door refuses
// it again, so that the platform can refuse a replay that reaches another
// of its processes (the door's own memory is per process).
type Origin struct {
	Addr        string
	Label       string
	Transaction []byte
	Until       time.Time
}

// Refusal is an error Devices returns for a request it refuses: the door
// answers it with FailBit and Text; any other error is a systemFailure
// whose cause only the log sees.
type Refusal struct {
	FailBit int
	Text    string
	Err     error
}

func (r *Refusal) Error() string { return r.Text }
func (r *Refusal) Unwrap() error { return r.Err }

// Config configures a Server.
type Config struct {
	Devices Devices
	// Signer protects every response; SignerChain is its certificate
	// and the chain above it, DER, which responses carry in extraCerts.
	Signer      crypto.Signer
	SignerChain [][]byte
	// VerifyDevice checks that chain (leaf first) is a device
	// certificate of the platform's CA, and returns the leaf.
	VerifyDevice func(chain [][]byte, now time.Time) (*x509.Certificate, error)
	// CACerts is what genm's id-it-caCerts answers: DER certificates,
	// under a product label the CA that issues its devices; an unknown
	// label is an error wrapping ErrUnknownLabel.
	CACerts func(ctx context.Context, label string) ([][]byte, error)
	Log     *slog.Logger
	Now     func() time.Time
	// Window is how far a request's messageTime may be from the
	// platform's clock, and how long a transaction is remembered; zero
	// is DefaultWindow.
	Window time.Duration
	// MaxTransactions bounds the transactions remembered; zero is
	// DefaultMaxTransactions.
	MaxTransactions int
}

// Defaults.
const (
	DefaultWindow          = 5 * time.Minute
	DefaultMaxTransactions = 100_000
)

// Server answers PKIMessages.
type Server struct {
	cfg      Config
	suite    sigalg.Suite
	senderDN asn1.RawValue
	kid      []byte
	mu       sync.Mutex
	tx       map[string]*transaction
}

// transaction is what the door remembers of a transaction until it ends
// or expires, so that a replayed request (its transactionID) is refused
// and a certConf is checked against what it confirms.
type transaction struct {
	expires  time.Time
	waiting  bool   // an ip, cp or kup awaits its certConf
	nonce    []byte // our senderNonce, the certConf's recipNonce
	certHash [32]byte
	reqID    int
	// protector is the SPKI that protected the request, which must
	// protect its certConf too; issued is the certificate, revoked if
	// the certConf rejects it.
	protector []byte
	issued    []byte
}

// NewServer checks cfg and builds a Server.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Devices == nil || cfg.Signer == nil || len(cfg.SignerChain) == 0 || cfg.VerifyDevice == nil || cfg.CACerts == nil {
		return nil, errors.New("cmp: devices, a signer with its chain, a device verifier and the CA certificates are required")
	}
	suite, err := sigalg.SuiteOf(cfg.Signer.Public())
	if err != nil {
		return nil, fmt.Errorf("cmp: response signer: %w", err)
	}
	cert, err := x509.ParseCertificate(cfg.SignerChain[0])
	if err != nil {
		return nil, fmt.Errorf("cmp: response signer certificate: %w", err)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.MaxTransactions <= 0 {
		cfg.MaxTransactions = DefaultMaxTransactions
	}
	return &Server{cfg: cfg, suite: suite, kid: cert.SubjectKeyId, tx: map[string]*transaction{},
		senderDN: asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true, Bytes: cert.RawSubject}}, nil
}

// failure is a refusal on its way to an error body.
type failure struct {
	bit  int
	text string
}

func (f *failure) Error() string { return f.text }

func fail(bit int, format string, a ...any) *failure {
	return &failure{bit: bit, text: fmt.Sprintf(format, a...)}
}

// Handle answers one DER request with one DER response; it fails only if
// the response cannot be built.
func (s *Server) Handle(ctx context.Context, der []byte, o Origin) ([]byte, error) {
	addr := o.Addr
	req, err := Parse(der)
	if err != nil {
		s.cfg.Log.Info("cmp request refused", "source", addr, "err", err)
		return s.respond(nil, TypeError, errorBody(fail(FailBadDataFormat, "not a DER PKIMessage this server reads: %v", err)), nil, nil)
	}
	typ, content, extra, tx, err := s.handle(ctx, req, o)
	if err != nil {
		var f *failure
		if !errors.As(err, &f) {
			var r *Refusal
			if errors.As(err, &r) {
				f = &failure{bit: r.FailBit, text: r.Text}
			} else {
				s.cfg.Log.Error("cmp request failed", "source", addr, "body", BodyName(req.Type()), "err", err)
				f = fail(FailSystemFailure, "internal error; try again later")
			}
		}
		s.cfg.Log.Info("cmp request refused", "source", addr, "body", BodyName(req.Type()), "reason", f.text)
		return s.respond(req, TypeError, errorBody(f), nil, nil)
	}
	return s.respond(req, typ, content, extra, tx)
}

func errorBody(f *failure) ErrorContent {
	return ErrorContent{Status: Rejection(f.bit, f.text)}
}

// handle checks the header and protection and dispatches on the body.
func (s *Server) handle(ctx context.Context, req *Message, o Origin) (int, any, [][]byte, *transaction, error) {
	h := &req.Header
	now := s.cfg.Now()
	switch {
	case len(h.TransactionID) < 16 || len(h.TransactionID) > 64:
		return 0, nil, nil, nil, fail(FailBadRequest, "transactionID of %d bytes (16 to 64)", len(h.TransactionID))
	case len(h.SenderNonce) < 16 || len(h.SenderNonce) > 64:
		return 0, nil, nil, nil, fail(FailBadSenderNonce, "senderNonce of %d bytes (16 to 64)", len(h.SenderNonce))
	case h.MessageTime.IsZero():
		return 0, nil, nil, nil, fail(FailBadTime, "messageTime is required")
	case h.MessageTime.Before(now.Add(-s.cfg.Window)) || h.MessageTime.After(now.Add(s.cfg.Window)):
		return 0, nil, nil, nil, fail(FailBadTime, "messageTime %s is more than %s from the server's clock", h.MessageTime.UTC().Format(time.RFC3339), s.cfg.Window)
	}
	content, err := req.Content()
	if err != nil && req.Type() != TypePKIConf {
		return 0, nil, nil, nil, fail(FailBadDataFormat, "%v", err)
	}
	switch req.Type() {
	case TypeIR, TypeCR, TypeP10CR:
		return s.enrol(ctx, req, content, o, now)
	case TypeKUR:
		return s.renew(ctx, req, content, o, now)
	case TypeRR:
		return s.revoke(ctx, req, content, o, now)
	case TypeCertConf:
		return s.confirm(ctx, req, content, o, now)
	case TypeGenM:
		return s.general(ctx, req, content, o, now)
	}
	return 0, nil, nil, nil, fail(FailBadRequest, "%s is not supported: this server answers ir, cr, p10cr, kur, rr, certConf and genm", BodyName(req.Type()))
}

// protectingKey verifies req's signature protection by the key of cert
// (DER), returning its SPKI.
func protectingKey(req *Message, spki []byte) error {
	if req.Protection.BitLength == 0 {
		return fail(FailBadMessageCheck, "the message is not protected; sign it with the enrolment or device key")
	}
	pub, suite, err := sigalg.ParsePublicKeyWithSuite(spki)
	if err != nil {
		return fail(FailSignerNotTrusted, "the protecting key is not one the platform accepts: %v", err)
	}
	if !req.Header.ProtectionAlg.Algorithm.Equal(suite.OID()) {
		return fail(FailBadAlg, "protectionAlg %v does not match the %s key (password-based MAC is not supported)", req.Header.ProtectionAlg.Algorithm, suite.ID())
	}
	if req.Protection.BitLength%8 != 0 {
		return fail(FailBadMessageCheck, "protection is not whole bytes")
	}
	part, err := req.ProtectedPart()
	if err != nil {
		return fail(FailBadMessageCheck, "%v", err)
	}
	if err := suite.Verify(pub, part, req.Protection.Bytes); err != nil {
		return fail(FailBadMessageCheck, "the protection does not verify under the protecting certificate's key")
	}
	return nil
}

// firstCertSPKI is the SPKI of the protecting certificate: the first of
// extraCerts (RFC 9483 section 3.3) whose subject key identifier is the
// header's senderKID, or the first if none says; nil without extraCerts.
// OpenSSL 3.0 leaves a self-signed protecting certificate out, so a
// device passes it with -extracerts, after any others.
func firstCertSPKI(req *Message) ([]byte, error) {
	var first []byte
	for i, raw := range req.ExtraCerts {
		c, err := x509.ParseCertificate(raw.FullBytes)
		if err != nil {
			return nil, fail(FailBadDataFormat, "extraCerts[%d] is not a certificate: %v", i, err)
		}
		if len(req.Header.SenderKID) > 0 && bytes.Equal(c.SubjectKeyId, req.Header.SenderKID) {
			return c.RawSubjectPublicKeyInfo, nil
		}
		if i == 0 {
			first = c.RawSubjectPublicKeyInfo
		}
	}
	return first, nil
}

// begin records a new transaction, refusing a transactionID in use:
// that refuses a replayed request.
func (s *Server) begin(req *Message, now time.Time) (*transaction, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := string(req.Header.TransactionID)
	if t, ok := s.tx[key]; ok && now.Before(t.expires) {
		return nil, fail(FailTransactionIDInUse, "transactionID already used; start a new transaction")
	}
	if len(s.tx) >= s.cfg.MaxTransactions {
		for k, t := range s.tx {
			if !now.Before(t.expires) {
				delete(s.tx, k)
			}
		}
		if len(s.tx) >= s.cfg.MaxTransactions {
			return nil, fail(FailSystemUnavail, "too many transactions in progress; try again later")
		}
	}
	// Remembered twice the window: a request is accepted for a window
	// either side of its messageTime.
	t := &transaction{expires: now.Add(2 * s.cfg.Window)}
	s.tx[key] = t
	return t, nil
}

// certRequest checks one CRMF request's signature POP and returns its
// key's SPKI.
func certRequest(content []byte) (int, []byte, error) {
	msgs, err := ParseCertReqMessages(content)
	if err != nil {
		return 0, nil, fail(FailBadDataFormat, "%v", err)
	}
	if len(msgs) != 1 {
		return 0, nil, fail(FailBadRequest, "%d certificate requests in one message; send one", len(msgs))
	}
	m := &msgs[0]
	tpl, err := ParseTemplate(m.CertReq.CertTemplate.FullBytes)
	if err != nil {
		return 0, nil, fail(FailBadCertTemplate, "%v", err)
	}
	if tpl.PublicKey == nil {
		return 0, nil, fail(FailBadCertTemplate, "the template has no public key: central key generation is not supported")
	}
	pop, err := m.SignaturePOP()
	if err != nil {
		return 0, nil, fail(FailBadPOP, "%v", err)
	}
	pub, suite, err := sigalg.ParsePublicKeyWithSuite(tpl.PublicKey)
	if err != nil {
		return 0, nil, fail(FailBadCertTemplate, "the requested key is not one the platform certifies: %v", err)
	}
	if !pop.Algorithm.Algorithm.Equal(suite.OID()) || pop.Signature.BitLength%8 != 0 ||
		suite.Verify(pub, m.CertReq.Raw, pop.Signature.Bytes) != nil {
		return 0, nil, fail(FailBadPOP, "the proof of possession does not verify under the requested key")
	}
	return m.CertReq.CertReqID, tpl.PublicKey, nil
}

// csrKey checks a PKCS #10 request's self-signature and returns its SPKI.
func csrKey(der []byte) ([]byte, error) {
	var csr struct {
		Info      asn1.RawValue
		Algorithm pkix.AlgorithmIdentifier
		Signature asn1.BitString
	}
	var info struct {
		Version int
		Subject asn1.RawValue
		SPKI    asn1.RawValue
		Attrs   asn1.RawValue `asn1:"optional,tag:0"`
	}
	if rest, err := asn1.Unmarshal(der, &csr); err != nil || len(rest) > 0 {
		return nil, fail(FailBadDataFormat, "the p10cr body is not a PKCS #10 request")
	}
	if rest, err := asn1.Unmarshal(csr.Info.FullBytes, &info); err != nil || len(rest) > 0 {
		return nil, fail(FailBadDataFormat, "the PKCS #10 request's info does not parse")
	}
	pub, suite, err := sigalg.ParsePublicKeyWithSuite(info.SPKI.FullBytes)
	if err != nil {
		return nil, fail(FailBadCertTemplate, "the requested key is not one the platform certifies: %v", err)
	}
	if !csr.Algorithm.Algorithm.Equal(suite.OID()) || csr.Signature.BitLength%8 != 0 ||
		suite.Verify(pub, csr.Info.FullBytes, csr.Signature.Bytes) != nil {
		return nil, fail(FailBadPOP, "the PKCS #10 request's signature does not verify")
	}
	return info.SPKI.FullBytes, nil
}

// enrol answers ir, cr and p10cr: protected by the enrolment key, for
// the operational key the request proves.
func (s *Server) enrol(ctx context.Context, req *Message, content []byte, o Origin, now time.Time) (int, any, [][]byte, *transaction, error) {
	var reqID int
	var opSPKI []byte
	var err error
	if req.Type() == TypeP10CR {
		opSPKI, err = csrKey(content)
	} else {
		reqID, opSPKI, err = certRequest(content)
	}
	if err != nil {
		return 0, nil, nil, nil, err
	}
	enrolment, err := firstCertSPKI(req)
	if err != nil {
		return 0, nil, nil, nil, err
	}
	if enrolment == nil && req.Type() == TypeP10CR {
		enrolment = opSPKI // the request's own key protects it
	}
	if enrolment == nil {
		return 0, nil, nil, nil, fail(FailSignerNotTrusted, "no protecting certificate: put the enrolment key's self-signed certificate in extraCerts (openssl cmp: -extracerts)")
	}
	if err := protectingKey(req, enrolment); err != nil {
		return 0, nil, nil, nil, err
	}
	tx, err := s.begin(req, now)
	if err != nil {
		return 0, nil, nil, nil, err
	}
	tx.protector = enrolment
	o.Transaction, o.Until = req.Header.TransactionID, tx.expires
	issued, err := s.cfg.Devices.Enrol(ctx, o, enrolment, opSPKI)
	if err != nil {
		return 0, nil, nil, nil, err
	}
	resp := TypeIP
	if req.Type() != TypeIR {
		resp = TypeCP
	}
	return s.certResponse(req, resp, reqID, issued, tx)
}

// deviceLeaf verifies that the protecting certificate is a current
// device certificate of the platform's CA and that it protects req.
func (s *Server) deviceLeaf(req *Message, now time.Time) (*x509.Certificate, error) {
	if len(req.ExtraCerts) == 0 {
		return nil, fail(FailSignerNotTrusted, "no protecting certificate: put the device certificate first in extraCerts")
	}
	chain := make([][]byte, len(req.ExtraCerts))
	for i, c := range req.ExtraCerts {
		chain[i] = c.FullBytes
	}
	leaf, err := s.cfg.VerifyDevice(chain, now)
	if err != nil {
		return nil, fail(FailSignerNotTrusted, "the protecting certificate is not a device certificate of this platform: %v", err)
	}
	if err := protectingKey(req, leaf.RawSubjectPublicKeyInfo); err != nil {
		return nil, err
	}
	return leaf, nil
}

// renew answers kur: protected by the current certificate's key.
func (s *Server) renew(ctx context.Context, req *Message, content []byte, o Origin, now time.Time) (int, any, [][]byte, *transaction, error) {
	reqID, opSPKI, err := certRequest(content)
	if err != nil {
		return 0, nil, nil, nil, err
	}
	leaf, err := s.deviceLeaf(req, now)
	if err != nil {
		return 0, nil, nil, nil, err
	}
	tx, err := s.begin(req, now)
	if err != nil {
		return 0, nil, nil, nil, err
	}
	tx.protector = leaf.RawSubjectPublicKeyInfo
	issued, err := s.cfg.Devices.Renew(ctx, o, leaf, opSPKI)
	if err != nil {
		return 0, nil, nil, nil, err
	}
	return s.certResponse(req, TypeKUP, reqID, issued, tx)
}

// certResponse builds ip, cp or kup and notes what certConf must confirm.
func (s *Server) certResponse(req *Message, typ, reqID int, issued Issued, tx *transaction) (int, any, [][]byte, *transaction, error) {
	tx.certHash = sha256.Sum256(issued.Certificate)
	tx.issued = issued.Certificate
	tx.reqID = reqID
	tx.waiting = !implicitConfirm(req)
	body := CertRepMessage{Response: []CertResponse{{CertReqID: reqID, Status: StatusInfo{Status: StatusAccepted},
		CertifiedKeyPair: CertifiedKeyPair{Certificate: CertificateChoice(issued.Certificate)}}}}
	return typ, body, issued.Chain, tx, nil
}

func implicitConfirm(req *Message) bool {
	for _, itav := range req.Header.GeneralInfo {
		if itav.Type.Equal(OIDImplicitConfirm) {
			return true
		}
	}
	return false
}

// revoke answers rr: the device revokes its own certificate, which
// protects the request and which the request names.
func (s *Server) revoke(ctx context.Context, req *Message, content []byte, o Origin, now time.Time) (int, any, [][]byte, *transaction, error) {
	var details []RevDetails
	if rest, err := asn1.Unmarshal(content, &details); err != nil || len(rest) > 0 || len(details) != 1 {
		return 0, nil, nil, nil, fail(FailBadDataFormat, "rr must carry exactly one RevDetails")
	}
	tpl, err := ParseTemplate(details[0].CertDetails.FullBytes)
	if err != nil {
		return 0, nil, nil, nil, fail(FailBadCertTemplate, "%v", err)
	}
	leaf, err := s.deviceLeaf(req, now)
	if err != nil {
		return 0, nil, nil, nil, err
	}
	if !bytes.Equal(tpl.Issuer, leaf.RawIssuer) || !bytes.Equal(tpl.Serial, leaf.SerialNumber.Bytes()) {
		return 0, nil, nil, nil, fail(FailNotAuthorized, "a device may revoke only the certificate that protects the request")
	}
	tx, err := s.begin(req, now)
	if err != nil {
		return 0, nil, nil, nil, err
	}
	reason, err := revocationReason(details[0].CRLEntryDetails)
	if err != nil {
		return 0, nil, nil, nil, err
	}
	if err := s.cfg.Devices.Revoke(ctx, o, leaf, reason); err != nil {
		return 0, nil, nil, nil, err
	}
	return TypeRP, RevRepContent{Status: []StatusInfo{{Status: StatusAccepted}}}, nil, tx, nil
}

// confirm answers certConf with pkiConf, ending the transaction. A
// certConf that rejects the certificate has it revoked (RFC 4210 section
// 5.3.18): the platform recorded it when it issued it.
func (s *Server) confirm(ctx context.Context, req *Message, content []byte, o Origin, now time.Time) (int, any, [][]byte, *transaction, error) {
	var statuses []CertStatus
	if rest, err := asn1.Unmarshal(content, &statuses); err != nil || len(rest) > 0 || len(statuses) > 1 {
		return 0, nil, nil, nil, fail(FailBadDataFormat, "certConf must carry at most one CertStatus")
	}
	s.mu.Lock()
	t, ok := s.tx[string(req.Header.TransactionID)]
	var protector, issued, nonce []byte
	var hash [32]byte
	var reqID int
	waiting := ok && now.Before(t.expires) && t.waiting
	if waiting {
		protector, issued, nonce, hash, reqID = t.protector, t.issued, t.nonce, t.certHash, t.reqID
	}
	s.mu.Unlock()
	switch {
	case !waiting:
		return 0, nil, nil, nil, fail(FailBadRequest, "no certificate awaits confirmation in this transaction")
	case !bytes.Equal(req.Header.RecipNonce, nonce):
		return 0, nil, nil, nil, fail(FailBadRecipientNonce, "recipNonce is not the senderNonce of the server's response")
	}
	if err := protectingKey(req, protector); err != nil {
		return 0, nil, nil, nil, err
	}
	rejected := false
	if len(statuses) == 1 {
		st := statuses[0]
		if st.CertReqID != reqID || !bytes.Equal(st.CertHash, hash[:]) {
			return 0, nil, nil, nil, fail(FailBadCertID, "certConf does not confirm the certificate issued in this transaction")
		}
		rejected = st.StatusInfo.Status == StatusRejection
	}
	s.mu.Lock()
	if !t.waiting { // a concurrent certConf won
		s.mu.Unlock()
		return 0, nil, nil, nil, fail(FailBadRequest, "no certificate awaits confirmation in this transaction")
	}
	t.waiting = false
	s.mu.Unlock()
	if rejected {
		leaf, err := x509.ParseCertificate(issued)
		if err != nil {
			return 0, nil, nil, nil, err
		}
		// RFC 4210 section 5.3.18: the holder rejected what it was
		// given; superseded says no key was compromised.
		if err := s.cfg.Devices.Revoke(ctx, o, leaf, reasonSuperseded); err != nil {
			return 0, nil, nil, nil, err
		}
		s.cfg.Log.Info("cmp certificate rejected by its holder and revoked", "source", o.Addr, "serial", leaf.SerialNumber.Text(16))
	}
	return TypePKIConf, asn1.NullRawValue, nil, nil, nil
}

// general answers genm: id-it-caCerts returns the CA certificates.
func (s *Server) general(ctx context.Context, req *Message, content []byte, o Origin, now time.Time) (int, any, [][]byte, *transaction, error) {
	var itavs []InfoTypeAndValue
	if rest, err := asn1.Unmarshal(content, &itavs); err != nil || len(rest) > 0 {
		return 0, nil, nil, nil, fail(FailBadDataFormat, "genm body does not parse")
	}
	if req.Protection.BitLength > 0 {
		// Protection is optional for public CA certificates; when it is
		// there it must hold.
		spki, err := firstCertSPKI(req)
		if err != nil {
			return 0, nil, nil, nil, err
		}
		if spki == nil {
			return 0, nil, nil, nil, fail(FailSignerNotTrusted, "protected genm without its certificate in extraCerts")
		}
		if err := protectingKey(req, spki); err != nil {
			return 0, nil, nil, nil, err
		}
	}
	tx, err := s.begin(req, now)
	if err != nil {
		return 0, nil, nil, nil, err
	}
	var out []InfoTypeAndValue
	for _, itav := range itavs {
		if !itav.Type.Equal(OIDCACerts) {
			return 0, nil, nil, nil, fail(FailBadRequest, "genm info type %v is not supported; ask for id-it-caCerts", itav.Type)
		}
		cas, err := s.cfg.CACerts(ctx, o.Label)
		if errors.Is(err, ErrUnknownLabel) {
			return 0, nil, nil, nil, fail(FailBadRequest, "no product has the label %q; use the product's ID, or no label", o.Label)
		}
		if err != nil {
			return 0, nil, nil, nil, err
		}
		var certs []asn1.RawValue
		for _, c := range cas {
			certs = append(certs, asn1.RawValue{FullBytes: c})
		}
		v, err := asn1.Marshal(certs)
		if err != nil {
			return 0, nil, nil, nil, err
		}
		out = append(out, InfoTypeAndValue{Type: OIDCACerts, Value: asn1.RawValue{FullBytes: v}})
	}
	if len(out) == 0 {
		return 0, nil, nil, nil, fail(FailBadRequest, "empty genm; ask for id-it-caCerts")
	}
	return TypeGenP, out, nil, tx, nil
}

// respond builds, protects and encodes the response; req is nil for a
// request that did not parse. tx, if any, learns our senderNonce.
func (s *Server) respond(req *Message, typ int, content any, chain [][]byte, tx *transaction) ([]byte, error) {
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	h := Header{PVNO: 2, Sender: s.senderDN, MessageTime: s.cfg.Now().UTC().Truncate(time.Second),
		ProtectionAlg: pkix.AlgorithmIdentifier{Algorithm: s.suite.OID()}, SenderKID: s.kid, SenderNonce: nonce,
		Recipient: asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true, Bytes: []byte{0x30, 0}}}
	if req != nil {
		h.PVNO = req.Header.PVNO
		h.Recipient = req.Header.Sender
		h.TransactionID = req.Header.TransactionID
		h.RecipNonce = req.Header.SenderNonce
		if tx != nil && (typ == TypeIP || typ == TypeCP || typ == TypeKUP) && !tx.waiting {
			h.GeneralInfo = []InfoTypeAndValue{{Type: OIDImplicitConfirm, Value: asn1.NullRawValue}}
		}
	}
	if tx != nil {
		s.mu.Lock()
		tx.nonce = nonce
		s.mu.Unlock()
	}
	body, err := NewBody(typ, content)
	if err != nil {
		return nil, err
	}
	m := &Message{Header: h, Body: body}
	part, err := m.ProtectedPart()
	if err != nil {
		return nil, err
	}
	sig, err := s.suite.Sign(s.cfg.Signer, part)
	if err != nil {
		return nil, fmt.Errorf("cmp: protect response: %w", err)
	}
	m.Protection = asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}
	for _, c := range append(append([][]byte(nil), s.cfg.SignerChain...), chain...) {
		m.ExtraCerts = append(m.ExtraCerts, asn1.RawValue{FullBytes: c})
	}
	return m.Marshal()
}

// CRLReason codes rr's crlEntryDetails may carry (RFC 5280 section
// 5.3.1); the platform decides which a device may give.
const (
	reasonUnspecified = 0
	reasonSuperseded  = 4
)

var oidCRLReason = asn1.ObjectIdentifier{2, 5, 29, 21}

// revocationReason is the reasonCode extension of rr's crlEntryDetails,
// unspecified without one; nothing else may be there.
func revocationReason(exts []pkix.Extension) (int, error) {
	reason := reasonUnspecified
	for _, e := range exts {
		if !e.Id.Equal(oidCRLReason) {
			if e.Critical {
				return 0, fail(FailBadRequest, "rr carries critical extension %v, which this server does not read", e.Id)
			}
			continue
		}
		var code asn1.Enumerated
		if rest, err := asn1.Unmarshal(e.Value, &code); err != nil || len(rest) > 0 || code < 0 || code > 10 {
			return 0, fail(FailBadDataFormat, "rr's reasonCode is not a CRLReason")
		}
		reason = int(code)
	}
	return reason, nil
}
