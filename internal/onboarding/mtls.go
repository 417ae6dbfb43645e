package onboarding

import (
	"context"
	"crypto/x509"
	"errors"
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
				return s.credentialsAt(certs[0], product, s.endpointOf(ctx, dev.Identity, product)), nil
			}
		}
	}
	s.audit(ctx, dev.Identity, "device.credentials", "denied", ErrorCode(err), addr)
	return nil, err
}

// Renew is the native door's renewal (RenewProven): channelBinding is
// the TLS connection's exporter value for ChannelBindingLabel (nil if
// the transport has none), to which the request may be bound
// (RenewBinding).
func (s *Service) Renew(ctx context.Context, leaf *x509.Certificate, channelBinding []byte, req RenewRequest, addr string) (*Credentials, error) {
	binding := ""
	if len(channelBinding) > 0 {
		binding = RenewBinding(channelBinding)
	}
	return s.RenewProven(ctx, ProvenRenewal{Leaf: leaf, Key: OperationalKey{CSR: req.CSR, Binding: binding}}, addr)
}
