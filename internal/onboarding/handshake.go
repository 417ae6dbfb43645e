package onboarding

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Enrolment authenticated by a TLS handshake (docs/front-doors.md, EST):
// the device signs the handshake with its enrolment key, which a front door
// such as EST presents here as the key's SubjectPublicKeyInfo, and sends a
// PKCS #10 request for its operational key bound to that connection. The
// handshake is the fresh proof the native protocol's challenge is, so the
// rules after it (standing, lock, request, one key per device, the one
// recording write) are the native protocol's, applied here and only here.

// HandshakeEnrolment is one enrolment over a connection the enrolment key
// authenticated.
type HandshakeEnrolment struct {
	// EnrolmentKey is the DER SubjectPublicKeyInfo of the key the TLS
	// handshake proved possession of; its SHA-256 is the identity.
	EnrolmentKey []byte
	// Binding is the value the request's challengePassword must carry:
	// HandshakeBinding of the connection's exporter value.
	Binding string
	CSR     []byte
	// Product, if not empty, is the product the front door was asked
	// under (an EST label); a device of another is refused.
	Product string
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

// EnrolByHandshake issues the credentials of a registered device whose
// enrolment key authenticated the connection carrying req. Refusals are
// recorded and counted as the native proof's are (action device.onboard).
// An unregistered key is ErrProofRejected, as an unknown identity is in
// the native protocol.
func (s *Service) EnrolByHandshake(ctx context.Context, req HandshakeEnrolment, addr string) (*Credentials, error) {
	start := s.cfg.Now()
	id := identity.FromSPKI(req.EnrolmentKey)
	creds, err := s.enrolByHandshake(ctx, id, req, addr)
	if err != nil {
		s.refuse(ctx, id, "device.onboard", err, addr)
		s.observe("proof", ErrorCode(err), start)
		return nil, err
	}
	s.observe("proof", "ok", start)
	return creds, nil
}

func (s *Service) enrolByHandshake(ctx context.Context, id identity.ID, req HandshakeEnrolment, addr string) (_ *Credentials, err error) {
	now := s.cfg.Now()
	if !s.allow(id, addr, now) {
		return nil, ErrRateLimited
	}
	if len(req.CSR) == 0 || len(req.CSR) > MaxCSR {
		return nil, fmt.Errorf("%w: csr of %d bytes (1 to %d)", ErrMalformed, len(req.CSR), MaxCSR)
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
	opKey, err := s.checkCSR(req.CSR, dev.Identity, req.Binding)
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
	if _, err := rand.Read(c.ID[:]); err != nil {
		return nil, err
	}
	if _, err := rand.Read(c.Nonce[:]); err != nil {
		return nil, err
	}
	if err := s.cfg.State.CreateChallenge(ctx, c); err != nil {
		return nil, fmt.Errorf("record challenge: %w", err)
	}
	ev := Event{Identity: dev.Identity, Action: "device.onboard", Outcome: "ok", Detail: "ok", Source: addr}
	defer func() {
		if err == nil && s.cfg.Watch != nil {
			s.cfg.Watch.Onboarded(ctx, Onboarding{Identity: dev.Identity, Source: addr, At: ev.Time,
				Again: dev.Standing == StandingOnboarded})
		}
	}()
	return s.issueWith(ctx, dev, opKey, func(cert Certificate, at time.Time) error {
		ev.Time = at
		return s.cfg.State.CompleteOnboarding(ctx, c.ID, cert, at, ev)
	})
}

// RenewByHandshake is Renew for a front door whose request carries
// binding (HandshakeBinding) rather than the native RenewBinding.
func (s *Service) RenewByHandshake(ctx context.Context, leaf *x509.Certificate, binding string, req RenewRequest, addr string) (*Credentials, error) {
	return s.renewAudited(ctx, leaf, binding, req, addr)
}
