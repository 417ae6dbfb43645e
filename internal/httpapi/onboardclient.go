package httpapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"

	"github.com/hallmark-iot/hallmark/internal/onboarding"
)

// maxOnboardingResponse bounds an onboarding answer: credentials are a
// short chain and a bundle.
const maxOnboardingResponse = 256 << 10

// OnboardingTransport is the device side of the onboarding routes over
// HTTPS: onboarding.Transport. A problem the platform answers with is an
// error errors.As finds the *Problem in and errors.Is the service's
// sentinel (onboarding.ErrProofRejected, …).
type OnboardingTransport struct {
	// BaseURL is the platform, e.g. https://hallmark.example.com:8443.
	BaseURL string
	// HTTP carries the requests; for Credentials and Renew it must present
	// the device's certificate (mutual TLS).
	HTTP *http.Client
}

var _ onboarding.Transport = (*OnboardingTransport)(nil)

// NewOnboardingClient returns the device-side client of the platform at
// baseURL over hc, expecting challenges for baseURL's host, making its
// certificate requests with csrs (onboardpki.CSRs).
func NewOnboardingClient(baseURL string, hc *http.Client, csrs onboarding.CSRMaker) (*onboarding.Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("server %q: %w", baseURL, err)
	}
	return &onboarding.Client{Transport: &OnboardingTransport{BaseURL: strings.TrimRight(baseURL, "/"), HTTP: hc},
		ServerName: u.Hostname(), CSRs: csrs}, nil
}

// Challenge implements onboarding.Transport.
func (t *OnboardingTransport) Challenge(ctx context.Context, req onboarding.ChallengeRequest) (onboarding.ChallengeResponse, error) {
	var ch onboarding.ChallengeResponse
	return ch, t.post(ctx, PathOnboardChallenge, req, &ch)
}

// Prove implements onboarding.Transport.
func (t *OnboardingTransport) Prove(ctx context.Context, req onboarding.ProofRequest) (*onboarding.Credentials, error) {
	var creds onboarding.Credentials
	if err := t.post(ctx, PathOnboardProof, req, &creds); err != nil {
		return nil, err
	}
	return &creds, nil
}

// Credentials implements onboarding.Transport.
func (t *OnboardingTransport) Credentials(ctx context.Context) (*onboarding.Credentials, error) {
	var creds onboarding.Credentials
	if err := t.send(ctx, http.MethodGet, PathDeviceCredentials, nil, &creds); err != nil {
		return nil, err
	}
	return &creds, nil
}

// Renew implements onboarding.Transport: the request is built from the
// exporter value (RFC 9266) of the TLS connection the request is given,
// and so written as it is sent (chunked over HTTP/1.1).
func (t *OnboardingTransport) Renew(ctx context.Context, build func(channelBinding []byte) (onboarding.RenewRequest, error)) (*onboarding.Credentials, error) {
	body := &connectionBoundBody{makeBody: func(cs tls.ConnectionState) ([]byte, error) {
		ekm, err := cs.ExportKeyingMaterial(onboarding.ChannelBindingLabel, nil, onboarding.ChannelBindingSize)
		if err != nil {
			return nil, fmt.Errorf("channel binding: %w", err)
		}
		req, err := build(ekm)
		if err != nil {
			return nil, err
		}
		return json.Marshal(req)
	}}
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		if tc, ok := info.Conn.(*tls.Conn); ok {
			body.connected(tc.ConnectionState())
		}
	}})
	var creds onboarding.Credentials
	if err := t.send(ctx, http.MethodPost, PathDeviceRenew, body, &creds); err != nil {
		return nil, err
	}
	return &creds, nil
}

func (t *OnboardingTransport) post(ctx context.Context, path string, in, out any) error {
	data, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return t.send(ctx, http.MethodPost, path, bytes.NewReader(data), out)
}

// send makes one request (body nil for none) and decodes the answer into
// out, or returns the problem as onboarding's error.
func (t *OnboardingTransport) send(ctx context.Context, method, path string, body io.Reader, out any) error {
	req := apiRequest{method: method, path: path, body: body, limit: maxOnboardingResponse}
	if body != nil {
		req.contentType = "application/json"
	}
	err := roundTrip(ctx, t.HTTP, t.BaseURL, req, out)
	var p *Problem
	if errors.As(err, &p) {
		return &onboardingError{kind: onboardingErrors[p.Code], problem: p}
	}
	return err
}

// onboardingErrors are the service's sentinels by the problem codes the
// routes answer them with (onboardingProblem).
var onboardingErrors = map[string]error{
	"malformed-request": onboarding.ErrMalformed, "rate-limited": onboarding.ErrRateLimited,
	"challenge-unknown": onboarding.ErrChallengeUnknown, "challenge-used": onboarding.ErrChallengeUsed,
	"challenge-expired": onboarding.ErrChallengeExpired, "proof-rejected": onboarding.ErrProofRejected,
	"device-revoked": onboarding.ErrRevoked, "device-suspended": onboarding.ErrSuspended,
	"device-decommissioned": onboarding.ErrDecommissioned, "bad-csr": onboarding.ErrBadCSR, "not-onboarded": onboarding.ErrNotOnboarded,
	"renewal-too-soon": onboarding.ErrRenewalLimited, "certificate-superseded": onboarding.ErrSuperseded,
	"renewal-not-due": onboarding.ErrRenewalNotDue, "device-migrated": onboarding.ErrMigrated,
	"allocation-unavailable": onboarding.ErrAllocationUnavailable,
}

// onboardingError is a problem of the onboarding routes that is also the
// service's error it stands for, if any.
type onboardingError struct {
	kind    error // nil for a code the service has no sentinel for
	problem *Problem
}

// Error says the problem with its HTTP status, as a device's user needs
// it.
func (e *onboardingError) Error() string {
	p := e.problem
	msg := p.Title
	if p.Detail != "" {
		msg += ": " + p.Detail
	}
	return fmt.Sprintf("%s (%s, HTTP %d)", msg, p.Code, p.Status)
}

func (e *onboardingError) Unwrap() []error {
	if e.kind == nil {
		return []error{e.problem}
	}
	return []error{e.kind, e.problem}
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
