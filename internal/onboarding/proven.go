package onboarding

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Enrolment whose proof a front door's binding made (docs/front-doors.md).
// The native protocol proves possession of the enrolment key by a
// signature over the platform's fresh challenge. A standard front door
// proves it on its own protocol, against something as fresh: EST by the
// TLS 1.3 handshake the enrolment key signed, Lightweight CMP by the
// key's signature protection of a message carrying its own replay
// protection (transactionID, nonces, messageTime). The door presents the
// key it verified here; the rules after the proof (standing, lock,
// product, the operational key, one key per device, the one recording
// write) are the native protocol's, applied here and only here, for every
// door.

// ProvenEnrolment is one enrolment whose proof of the enrolment key a
// front door verified.
type ProvenEnrolment struct {
	// EnrolmentKey is the DER SubjectPublicKeyInfo of the key the door
	// verified a fresh signature by; its SHA-256 is the identity.
	EnrolmentKey []byte
	// Product, if not empty, is the product the door was asked under (an
	// EST or CMP label); a device of another is refused.
	Product string
	Key     OperationalKey
	// Exchange, if not empty, names the door's exchange (a CMP
	// transactionID): a second enrolment in the same exchange is refused
	// (ErrChallengeUsed) until ExchangeExpires, by every process of the
	// platform, as the record of the exchange is the store's.
	Exchange        []byte
	ExchangeExpires time.Time
}

// OperationalKey is the key a device asks to have certified, and how its
// possession is shown: a PKCS #10 request the service checks (CSR, bound
// to the exchange by Binding), or, when CSR is empty, a key whose
// possession the door verified on its own protocol (Proven: a CRMF proof
// of possession).
type OperationalKey struct {
	CSR     []byte
	Binding string
	Proven  crypto.PublicKey
}

// ProvenRenewal is one renewal by a device that authenticated with its
// current certificate, Leaf, verified against the platform's CA.
type ProvenRenewal struct {
	Leaf *x509.Certificate
	// Product, if not empty, is the product the door was asked under; a
	// device of another is refused.
	Product string
	Key     OperationalKey
}

// HandshakeBinding is the challengePassword binding a certificate request
// to a TLS connection, as RFC 7030 §3.5 carries tls-unique: the base64 of
// the connection's RFC 9266 tls-exporter value (ChannelBindingLabel, empty
// context, ChannelBindingSize bytes).
func HandshakeBinding(channelBinding []byte) string {
	if len(channelBinding) == 0 {
		return ""
	}
	return base64.StdEncoding.EncodeToString(channelBinding)
}

// EnrolProven issues the credentials of a registered device whose
// enrolment key a front door verified. Refusals are recorded and counted
// as the native proof's are (action device.onboard). An unregistered key
// is ErrProofRejected, as an unknown identity is in the native protocol.
func (s *Service) EnrolProven(ctx context.Context, req ProvenEnrolment, addr string) (*Credentials, error) {
	start := s.cfg.Now()
	id := identity.FromSPKI(req.EnrolmentKey)
	creds, err := s.enrolProven(ctx, id, req, addr)
	if err != nil {
		s.refuse(ctx, id, "device.onboard", err, addr)
		s.observe("proof", ErrorCode(err), start)
		return nil, err
	}
	s.observe("proof", "ok", start)
	return creds, nil
}

func (s *Service) enrolProven(ctx context.Context, id identity.ID, req ProvenEnrolment, addr string) (*Credentials, error) {
	now := s.cfg.Now()
	if !s.allow(id, addr, now) {
		return nil, ErrRateLimited
	}
	if err := req.Key.check(); err != nil {
		return nil, err
	}
	if _, _, err := sigalg.ParsePublicKeyWithSuite(req.EnrolmentKey); err != nil {
		return nil, ErrProofRejected
	}
	dev, err := s.cfg.State.Device(ctx, id)
	switch {
	case err == nil && bytes.Equal(dev.PublicKey, req.EnrolmentKey):
	case err == nil, errors.Is(err, ErrNotFound):
		return nil, ErrProofRejected
	default:
		return nil, fmt.Errorf("read device: %w", err)
	}
	if err := dev.Standing.refusal(); err != nil {
		return nil, err
	}
	if err := s.checkLocked(ctx, dev); err != nil {
		return nil, err
	}
	if req.Product != "" && req.Product != dev.ProductID {
		return nil, fmt.Errorf("%w: the device is not of product %q", ErrProofRejected, req.Product)
	}
	opKey, err := s.operationalKey(req.Key, dev.Identity)
	if err != nil {
		return nil, err
	}
	if spki, err := sigalg.MarshalPublicKey(opKey); err != nil || bytes.Equal(spki, req.EnrolmentKey) {
		return nil, fmt.Errorf("%w: the request must be for a new operational key, not the enrolment key", ErrBadCSR)
	}
	// The native protocol's one write consumes a challenge; this
	// enrolment's is made and consumed in the same breath, so the
	// device's records are the same whichever door it came through.
	c := Challenge{Identity: id, ServerName: s.cfg.ServerName, IssuedAt: now, ExpiresAt: now.Add(ChallengeTTL)}
	if len(req.Exchange) > 0 {
		c.ID = exchangeID(id, req.Exchange)
		if req.ExchangeExpires.After(c.ExpiresAt) {
			c.ExpiresAt = req.ExchangeExpires
		}
	} else if _, err := rand.Read(c.ID[:]); err != nil {
		return nil, err
	}
	if _, err := rand.Read(c.Nonce[:]); err != nil {
		return nil, err
	}
	switch err := s.cfg.State.CreateChallenge(ctx, c); {
	case err != nil && len(req.Exchange) > 0 && errors.Is(err, ErrSerialTaken):
		return nil, fmt.Errorf("%w: this exchange enrolled the device already; start a new one", ErrChallengeUsed)
	case err != nil:
		return nil, fmt.Errorf("record challenge: %w", err)
	}
	return s.onboard(ctx, dev, opKey, addr, func(cert Certificate, at time.Time, ev Event) error {
		return s.cfg.State.CompleteOnboarding(ctx, c.ID, cert, at, ev)
	})
}

// exchangeID is the record of a front door's exchange: one per device
// and exchange, whatever process answers it.
func exchangeID(id identity.ID, exchange []byte) [ChallengeIDSize]byte {
	h := sha256.New()
	h.Write([]byte("hallmark front-door exchange\x00"))
	h.Write(id[:])
	h.Write(exchange)
	return [ChallengeIDSize]byte(h.Sum(nil))
}

// check refuses what is not one operational key before any lookup.
func (k OperationalKey) check() error {
	switch {
	case len(k.CSR) == 0 && k.Proven == nil:
		return fmt.Errorf("%w: no certificate request", ErrMalformed)
	case len(k.CSR) > MaxCSR:
		return fmt.Errorf("%w: csr of %d bytes (1 to %d)", ErrMalformed, len(k.CSR), MaxCSR)
	}
	return nil
}

// operationalKey is the key k asks to certify for device id, once its
// request is checked (the CSR's subject, binding and self-signature) or
// the proven key is one the platform certifies.
func (s *Service) operationalKey(k OperationalKey, id identity.ID) (crypto.PublicKey, error) {
	if len(k.CSR) > 0 {
		return s.checkCSR(k.CSR, id, k.Binding)
	}
	spki, err := sigalg.MarshalPublicKey(k.Proven)
	if err == nil {
		_, _, err = sigalg.ParsePublicKeyWithSuite(spki)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCSR, err)
	}
	return k.Proven, nil
}

// RenewProven issues a new certificate to a device that authenticated
// with its current one (or, within its grace, the one that replaced
// last); every door's renewal, the native one's included, comes through
// it, and its outcome is recorded (action device.renew).
//
// A renewal before the device's current certificate enters its
// product's renewal window is refused (ErrRenewalNotDue) unless an
// administrator granted one, which the renewal consumes; its audit
// event then says "forced".
func (s *Service) RenewProven(ctx context.Context, req ProvenRenewal, addr string) (*Credentials, error) {
	creds, dev, forced, err := s.renew(ctx, req)
	outcome, detail := "ok", ErrorCode(err)
	switch {
	case err != nil:
		outcome = "denied"
	case forced:
		detail = "forced"
	}
	s.audit(ctx, dev.Identity, "device.renew", outcome, detail, addr)
	return creds, err
}

func (s *Service) renew(ctx context.Context, req ProvenRenewal) (*Credentials, Device, bool, error) {
	if err := req.Key.check(); err != nil {
		return nil, Device{}, false, err
	}
	dev, _, err := s.deviceOf(ctx, req.Leaf)
	if err != nil {
		return nil, dev, false, err
	}
	if req.Product != "" && req.Product != dev.ProductID {
		return nil, dev, false, fmt.Errorf("%w: the certificate's device is not of product %q", ErrNotOnboarded, req.Product)
	}
	opKey, err := s.operationalKey(req.Key, dev.Identity)
	if err != nil {
		return nil, dev, false, err
	}
	product, err := s.product(ctx, dev.ProductID)
	if err != nil {
		return nil, dev, false, fmt.Errorf("product %q of %s: %w", dev.ProductID, dev.Identity, err)
	}
	certs, err := s.cfg.State.Certificates(ctx, dev.Identity)
	if err != nil {
		return nil, dev, false, fmt.Errorf("list certificates: %w", err)
	}
	if err := s.checkRenewalDue(ctx, dev.Identity, certs, product); err != nil {
		return nil, dev, false, err
	}
	if err := s.checkRenewalLimit(certs); err != nil {
		return nil, dev, false, err
	}
	creds, forced, err := s.issue(ctx, dev, opKey, product.RenewalWindow)
	return creds, dev, forced, err
}
