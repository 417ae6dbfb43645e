package onboarding

import (
	"context"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/identity"
)

// Prover is the device's root of trust as the client needs it: it signs
// identity.ProofMessage(context, nonce, id) with the enrolment key.
// *device.Device implements it.
type Prover interface {
	Prove(context string, nonce []byte) (identity.ID, []byte, error)
}

// Transport carries the protocol's four exchanges to the platform and
// back: internal/httpapi binds them to HTTPS, InProcess to a Service in
// the same process. A refusal is an error errors.Is finds the Service's
// sentinel in (ErrProofRejected, ErrRevoked, …).
type Transport interface {
	Challenge(ctx context.Context, req ChallengeRequest) (ChallengeResponse, error)
	Prove(ctx context.Context, req ProofRequest) (*Credentials, error)
	// Credentials and Renew authenticate as the device's certificate
	// (mutual TLS over HTTPS).
	Credentials(ctx context.Context) (*Credentials, error)
	// Renew sends the request build makes from the channel binding of the
	// connection that carries it: its RFC 9266 tls-exporter value for
	// ChannelBindingLabel, ChannelBindingSize bytes.
	Renew(ctx context.Context, build func(channelBinding []byte) (RenewRequest, error)) (*Credentials, error)
}

// CSRMaker makes the PKCS #10 requests a device sends: for key, its
// subject naming commonName alone, carrying challengePassword unless it
// is empty (internal/onboarding/onboardpki makes them with the
// platform's PKI).
type CSRMaker interface {
	MakeCSR(key crypto.Signer, commonName, challengePassword string) ([]byte, error)
}

// Client is the device side of the protocol.
type Client struct {
	Transport Transport
	// ServerName is the platform's name as the device reached it (the
	// host of its URL): a challenge made for another name is refused.
	ServerName string
	// CSRs makes the requests of OnboardWithKey and RenewWithKey.
	CSRs CSRMaker
}

// Onboard runs the whole exchange: it offers the identity, checks that the
// challenge names the server it is talking to, has the device sign the
// transcript, and sends the proof with csr (a PKCS #10 request for the
// device's operational key, made beforehand and so not bound to the
// exchange: a platform that requires bound requests refuses it; see
// OnboardWithKey).
func (c *Client) Onboard(ctx context.Context, dev Prover, id identity.ID, csr []byte) (*Credentials, error) {
	return c.onboard(ctx, dev, id, func([ChallengeIDSize]byte, ChallengeResponse) ([]byte, error) { return csr, nil })
}

// OnboardWithKey runs the exchange as Onboard, with a request for op made
// once the challenge has arrived: its subject names id and its
// challengePassword carries the challenge's CSRBinding, so the request is
// good for this exchange only (docs/protocol.md).
func (c *Client) OnboardWithKey(ctx context.Context, dev Prover, id identity.ID, op crypto.Signer) (*Credentials, error) {
	if c.CSRs == nil {
		return nil, errors.New("onboard: the client has no CSR maker")
	}
	return c.onboard(ctx, dev, id, func(challengeID [ChallengeIDSize]byte, ch ChallengeResponse) ([]byte, error) {
		return c.CSRs.MakeCSR(op, id.String(), CSRBinding(challengeID, ch.Nonce, ch.ServerName))
	})
}

// onboard runs the exchange with the request makeCSR returns for the
// challenge.
func (c *Client) onboard(ctx context.Context, dev Prover, id identity.ID,
	makeCSR func([ChallengeIDSize]byte, ChallengeResponse) ([]byte, error)) (*Credentials, error) {
	ch, err := c.Transport.Challenge(ctx, ChallengeRequest{Identity: id})
	if err != nil {
		return nil, fmt.Errorf("onboard: challenge: %w", err)
	}
	challengeID, err := c.checkChallenge(ch)
	if err != nil {
		return nil, fmt.Errorf("onboard: %w", err)
	}
	csr, err := makeCSR(challengeID, ch)
	if err != nil {
		return nil, fmt.Errorf("onboard: certificate request: %w", err)
	}
	signer, sig, err := dev.Prove(ProofContext, Transcript(challengeID, ch.Nonce, ch.ServerName, csr))
	if err != nil {
		return nil, fmt.Errorf("onboard: prove: %w", err)
	}
	if signer != id {
		return nil, fmt.Errorf("onboard: the device's key is %s, not %s", signer, id)
	}
	creds, err := c.Transport.Prove(ctx, ProofRequest{ChallengeID: ch.ChallengeID, Identity: id, CSR: csr, Signature: sig})
	if err != nil {
		return nil, fmt.Errorf("onboard: proof: %w", err)
	}
	return creds, nil
}

// checkChallenge refuses a challenge made for another server name, which
// is what a relay in the middle would forward.
func (c *Client) checkChallenge(ch ChallengeResponse) ([ChallengeIDSize]byte, error) {
	var id [ChallengeIDSize]byte
	if ch.ServerName != c.ServerName {
		return id, fmt.Errorf("challenge is for server %q, not %q", ch.ServerName, c.ServerName)
	}
	if ch.Context != ProofContext || len(ch.Nonce) != NonceSize {
		return id, errors.New("challenge has an unknown context or nonce size")
	}
	raw, err := hex.DecodeString(ch.ChallengeID)
	if err != nil || len(raw) != ChallengeIDSize {
		return id, errors.New("challenge has a malformed ID")
	}
	copy(id[:], raw)
	return id, nil
}

// Credentials fetches the device's current credentials, authenticated by
// its certificate.
func (c *Client) Credentials(ctx context.Context) (*Credentials, error) {
	creds, err := c.Transport.Credentials(ctx)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	return creds, nil
}

// Renew asks for a new certificate for csr, made beforehand and so not
// bound to the connection (see RenewWithKey).
func (c *Client) Renew(ctx context.Context, csr []byte) (*Credentials, error) {
	creds, err := c.Transport.Renew(ctx, func([]byte) (RenewRequest, error) { return RenewRequest{CSR: csr}, nil })
	if err != nil {
		return nil, fmt.Errorf("renew: %w", err)
	}
	return creds, nil
}

// RenewWithKey asks for a new certificate for op, with a request made
// once the connection that carries it is known: its subject names id and
// its challengePassword carries RenewBinding of the connection's channel
// binding (RFC 9266), so it is good on this connection only.
func (c *Client) RenewWithKey(ctx context.Context, id identity.ID, op crypto.Signer) (*Credentials, error) {
	if c.CSRs == nil {
		return nil, errors.New("renew: the client has no CSR maker")
	}
	creds, err := c.Transport.Renew(ctx, func(channelBinding []byte) (RenewRequest, error) {
		if len(channelBinding) == 0 {
			return RenewRequest{}, errors.New("channel binding: the connection has none")
		}
		csr, err := c.CSRs.MakeCSR(op, id.String(), RenewBinding(channelBinding))
		return RenewRequest{CSR: csr}, err
	})
	if err != nil {
		return nil, fmt.Errorf("renew: %w", err)
	}
	return creds, nil
}
