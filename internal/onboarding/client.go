package onboarding

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/pki"
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
	// RetryAfter is the server's Retry-After, zero without one.
	RetryAfter time.Duration `json:"-"`
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
	return c.onboard(ctx, dev, id, func(challengeID [ChallengeIDSize]byte, ch ChallengeResponse) ([]byte, error) {
		return pki.CreateCSRWith(op, pki.CSROptions{CommonName: id.String(),
			ChallengePassword: CSRBinding(challengeID, ch.Nonce, ch.ServerName)})
	})
}

// onboard runs the exchange with the request makeCSR returns for the
// challenge.
func (c *Client) onboard(ctx context.Context, dev Prover, id identity.ID,
	makeCSR func([ChallengeIDSize]byte, ChallengeResponse) ([]byte, error)) (*Credentials, error) {
	var ch ChallengeResponse
	if err := c.post(ctx, PathChallenge, ChallengeRequest{Identity: id}, &ch); err != nil {
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

// Renew asks for a new certificate over mutual TLS for csr, made
// beforehand and so not bound to the connection (see RenewWithKey).
func (c *Client) Renew(ctx context.Context, csr []byte) (*Credentials, error) {
	var creds Credentials
	if err := c.post(ctx, PathRenew, RenewRequest{CSR: csr}, &creds); err != nil {
		return nil, fmt.Errorf("renew: %w", err)
	}
	return &creds, nil
}

// RenewWithKey asks for a new certificate over mutual TLS for op, with a
// request made once the connection that carries it is known: its subject
// names id and its challengePassword carries RenewBinding of the
// connection's exporter value (RFC 9266), so it is good on this
// connection only. The body is therefore written as it is sent (chunked
// over HTTP/1.1).
func (c *Client) RenewWithKey(ctx context.Context, id identity.ID, op crypto.Signer) (*Credentials, error) {
	body := &connectionBoundBody{makeBody: func(cs tls.ConnectionState) ([]byte, error) {
		ekm, err := cs.ExportKeyingMaterial(ChannelBindingLabel, nil, ChannelBindingSize)
		if err != nil {
			return nil, fmt.Errorf("channel binding: %w", err)
		}
		csr, err := pki.CreateCSRWith(op, pki.CSROptions{CommonName: id.String(), ChallengePassword: RenewBinding(ekm)})
		if err != nil {
			return nil, err
		}
		return json.Marshal(RenewRequest{CSR: csr})
	}}
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		if tc, ok := info.Conn.(*tls.Conn); ok {
			body.connected(tc.ConnectionState())
		}
	}})
	var creds Credentials
	if err := c.send(ctx, http.MethodPost, PathRenew, body, &creds); err != nil {
		return nil, fmt.Errorf("renew: %w", err)
	}
	return &creds, nil
}

// connectionBoundBody is a request body made on its first read from the
// state of the TLS connection the request was given (httptrace GotConn
// comes before the transport reads the body).
type connectionBoundBody struct {
	makeBody func(tls.ConnectionState) ([]byte, error)
	mu       sync.Mutex
	state    *tls.ConnectionState
	rd       io.Reader
}

func (b *connectionBoundBody) connected(cs tls.ConnectionState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state = &cs
}

func (b *connectionBoundBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.rd == nil {
		if b.state == nil {
			return 0, errors.New("no TLS connection to bind the request to")
		}
		data, err := b.makeBody(*b.state)
		if err != nil {
			return 0, err
		}
		b.rd = bytes.NewReader(data)
	}
	return b.rd.Read(p)
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
	return c.send(ctx, method, path, rd, out)
}

// send makes the request with body (nil for none) and decodes the answer
// into out, or returns the problem the server answered with.
func (c *Client) send(ctx context.Context, method, path string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, body)
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
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
			p.RetryAfter = time.Duration(secs) * time.Second
		}
		return p
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}
