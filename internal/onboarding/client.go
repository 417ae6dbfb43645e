package onboarding

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/hallmark-iot/hallmark/internal/identity"
)

// HTTP routes of the protocol.
const (
	PathChallenge   = "/v1/onboard/challenge"
	PathProof       = "/v1/onboard/proof"
	PathCredentials = "/v1/device/credentials"
	PathRenew       = "/v1/device/renew"
)

// maxResponse bounds what the client reads from the server.
const maxResponse = 256 << 10

// Prover is the device's root of trust as the client needs it: it signs
// identity.ProofMessage(context, nonce, id) with the enrolment key.
// *device.Device implements it.
type Prover interface {
	Prove(context string, nonce []byte) (identity.ID, []byte, error)
}

// Client is the device side of the protocol over HTTPS.
type Client struct {
	// BaseURL is the platform, e.g. https://hallmark.example.com:8443.
	BaseURL string
	// HTTP carries the requests; for Credentials and Renew it must present
	// the device's certificate (mutual TLS).
	HTTP *http.Client
}

// ProblemError is an RFC 9457 problem the server answered with.
type ProblemError struct {
	Status int    `json:"status"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
}

func (p *ProblemError) Error() string {
	msg := p.Title
	if p.Detail != "" {
		msg += ": " + p.Detail
	}
	return fmt.Sprintf("%s (%s, HTTP %d)", msg, p.Code, p.Status)
}

// Onboard runs the whole exchange: it offers the identity, checks that the
// challenge names the server it is talking to, has the device sign the
// transcript, and sends the proof with csr (a PKCS #10 request for the
// device's operational key).
func (c *Client) Onboard(ctx context.Context, dev Prover, id identity.ID, csr []byte) (*Credentials, error) {
	var ch ChallengeResponse
	if err := c.post(ctx, PathChallenge, ChallengeRequest{Identity: id}, &ch); err != nil {
		return nil, fmt.Errorf("onboard: challenge: %w", err)
	}
	challengeID, err := c.checkChallenge(ch)
	if err != nil {
		return nil, fmt.Errorf("onboard: %w", err)
	}
	signer, sig, err := dev.Prove(ProofContext, Transcript(challengeID, ch.Nonce, ch.ServerName, csr))
	if err != nil {
		return nil, fmt.Errorf("onboard: prove: %w", err)
	}
	if signer != id {
		return nil, fmt.Errorf("onboard: the device's key is %s, not %s", signer, id)
	}
	var creds Credentials
	req := ProofRequest{ChallengeID: ch.ChallengeID, Identity: id, CSR: csr, Signature: sig}
	if err := c.post(ctx, PathProof, req, &creds); err != nil {
		return nil, fmt.Errorf("onboard: proof: %w", err)
	}
	return &creds, nil
}

// checkChallenge refuses a challenge made for another server name, which
// is what a relay in the middle would forward.
func (c *Client) checkChallenge(ch ChallengeResponse) ([ChallengeIDSize]byte, error) {
	var id [ChallengeIDSize]byte
	u, err := url.Parse(c.BaseURL)
	if err != nil {
		return id, err
	}
	if ch.ServerName != u.Hostname() {
		return id, fmt.Errorf("challenge is for server %q, not %q", ch.ServerName, u.Hostname())
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

// Credentials fetches the device's current credentials over mutual TLS.
func (c *Client) Credentials(ctx context.Context) (*Credentials, error) {
	var creds Credentials
	if err := c.do(ctx, http.MethodGet, PathCredentials, nil, &creds); err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	return &creds, nil
}

// Renew asks for a new certificate over mutual TLS.
func (c *Client) Renew(ctx context.Context, csr []byte) (*Credentials, error) {
	var creds Credentials
	if err := c.post(ctx, PathRenew, RenewRequest{CSR: csr}, &creds); err != nil {
		return nil, fmt.Errorf("renew: %w", err)
	}
	return &creds, nil
}

func (c *Client) post(ctx context.Context, path string, body, out any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, path, data, out)
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return err
	}
	if len(data) > maxResponse {
		return fmt.Errorf("response larger than %d bytes", maxResponse)
	}
	if resp.StatusCode/100 != 2 {
		p := &ProblemError{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode)}
		_ = json.Unmarshal(data, p)
		return p
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}
