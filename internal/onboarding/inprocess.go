package onboarding

import (
	"context"
	"crypto/x509"
)

// InProcess is a Transport that calls a Service in the same process, so
// that tests and the load generator run the real client against the real
// service with no network: what arrives is what the HTTPS binding would
// hand the service, and a refusal is the service's own error.
type InProcess struct {
	Service *Service
	// Source is the client address the service sees (rate limits, audit).
	Source string
	// Leaf is the device certificate the device routes authenticate with,
	// as mutual TLS would give it once verified against the platform's
	// CA; nil: none, ErrNotOnboarded.
	Leaf *x509.Certificate
	// ChannelBinding stands for the connection's tls-exporter value (RFC
	// 9266) a renewal's request may be bound to; nil: none.
	ChannelBinding []byte
}

// Challenge implements Transport.
func (t InProcess) Challenge(ctx context.Context, req ChallengeRequest) (ChallengeResponse, error) {
	return t.Service.Challenge(ctx, req, t.Source)
}

// Prove implements Transport.
func (t InProcess) Prove(ctx context.Context, req ProofRequest) (*Credentials, error) {
	return t.Service.Prove(ctx, req, t.Source)
}

// Credentials implements Transport.
func (t InProcess) Credentials(ctx context.Context) (*Credentials, error) {
	if t.Leaf == nil {
		return nil, ErrNotOnboarded
	}
	return t.Service.Credentials(ctx, t.Leaf, t.Source)
}

// Renew implements Transport.
func (t InProcess) Renew(ctx context.Context, build func(channelBinding []byte) (RenewRequest, error)) (*Credentials, error) {
	if t.Leaf == nil {
		return nil, ErrNotOnboarded
	}
	req, err := build(t.ChannelBinding)
	if err != nil {
		return nil, err
	}
	return t.Service.Renew(ctx, t.Leaf, t.ChannelBinding, req, t.Source)
}
