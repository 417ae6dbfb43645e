package onboarding

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
)

// deviceOf finds the device of a verified client certificate and checks
// that the device may use it: not suspended, revoked or decommissioned,
// onboarded since it was last reprovisioned, and the certificate not
// revoked.
func (s *Service) deviceOf(ctx context.Context, leaf *x509.Certificate) (Device, Certificate, error) {
	var serial [16]byte
	raw := leaf.SerialNumber.Bytes()
	if leaf.SerialNumber.Sign() <= 0 || len(raw) > len(serial) {
		return Device{}, Certificate{}, ErrNotOnboarded
	}
	copy(serial[len(serial)-len(raw):], raw)
	cert, err := s.cfg.State.Certificate(ctx, serial)
	if errors.Is(err, ErrNotFound) {
		return Device{}, cert, ErrNotOnboarded
	}
	if err != nil {
		return Device{}, cert, err
	}
	dev, err := s.cfg.State.Device(ctx, cert.Identity)
	if err != nil {
		return dev, cert, err
	}
	if err := dev.Standing.refusal(); err != nil {
		return dev, cert, err
	}
	if dev.Standing == StandingRegistered {
		// A certificate from before the device was reprovisioned: it
		// must onboard afresh.
		return dev, cert, ErrNotOnboarded
	}
	if !cert.RevokedAt.IsZero() {
		return dev, cert, ErrRevoked
	}
	return dev, cert, s.checkSuperseded(ctx, cert)
}

// Credentials returns an onboarded device's current credentials; leaf is
// the client certificate mutual TLS verified.
func (s *Service) Credentials(ctx context.Context, leaf *x509.Certificate, addr string) (*Credentials, error) {
	dev, _, err := s.deviceOf(ctx, leaf)
	if err == nil {
		var certs []Certificate
		if certs, err = s.cfg.State.Certificates(ctx, dev.Identity); err == nil && len(certs) > 0 {
			var product Product
			if product, err = s.product(ctx, dev.ProductID); err == nil {
				s.audit(ctx, dev.Identity, "device.credentials", "ok", "ok", addr)
				return s.credentials(certs[0], product), nil
			}
		}
	}
	s.audit(ctx, dev.Identity, "device.credentials", "denied", ErrorCode(err), addr)
	return nil, err
}

// Renew issues a new certificate to a device that authenticated with its
// current one (or, within its grace, the one that replaced last).
// channelBinding is the TLS connection's exporter value for
// ChannelBindingLabel (nil if the transport has none), to which the
// request may be bound (RenewBinding).
//
// A renewal before the device's current certificate enters its
// product's renewal window is refused (ErrRenewalNotDue) unless an
// administrator granted one, which the renewal consumes; its audit
// event then says "forced".
func (s *Service) Renew(ctx context.Context, leaf *x509.Certificate, channelBinding []byte, req RenewRequest, addr string) (*Credentials, error) {
	binding := ""
	if len(channelBinding) > 0 {
		binding = RenewBinding(channelBinding)
	}
	return s.renewAudited(ctx, leaf, binding, req, addr)
}

// renewAudited renews with the CSR bound to binding (empty: not bound)
// and records the outcome; every front door's renewal comes through it.
func (s *Service) renewAudited(ctx context.Context, leaf *x509.Certificate, binding string, req RenewRequest, addr string) (*Credentials, error) {
	creds, dev, forced, err := s.renew(ctx, leaf, binding, req)
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

func (s *Service) renew(ctx context.Context, leaf *x509.Certificate, binding string, req RenewRequest) (*Credentials, Device, bool, error) {
	if len(req.CSR) == 0 || len(req.CSR) > MaxCSR {
		return nil, Device{}, false, fmt.Errorf("%w: csr of %d bytes (1 to %d)", ErrMalformed, len(req.CSR), MaxCSR)
	}
	dev, _, err := s.deviceOf(ctx, leaf)
	if err != nil {
		return nil, dev, false, err
	}
	opKey, err := s.checkCSR(req.CSR, dev.Identity, binding)
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
