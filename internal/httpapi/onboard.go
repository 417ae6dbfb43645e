package httpapi

import (
	"crypto/x509"
	"net/http"
	"strconv"
	"time"

	"github.com/hallmark-iot/hallmark/internal/onboarding"
)

// Routes of the onboarding protocol (docs/protocol.md).
const (
	PathOnboardChallenge  = "/v1/onboard/challenge"
	PathOnboardProof      = "/v1/onboard/proof"
	PathDeviceCredentials = "/v1/device/credentials"
	PathDeviceRenew       = "/v1/device/renew"
)

// maxOnboardingBody bounds an onboarding request: an ML-DSA-87 CSR and
// signature in base64 stay well under it.
const maxOnboardingBody = 64 << 10

// DeviceVerifier checks a client certificate chain as presented in mutual
// TLS (leaf first) against the platform's CA and returns the leaf;
// pki.CA.VerifyDevice is one.
type DeviceVerifier func(chain [][]byte, now time.Time) (*x509.Certificate, error)

// HandleOnboarding adds the onboarding protocol's routes
// (docs/protocol.md): the public challenge and proof, and the device
// routes authenticated by mutual TLS.
func (s *Server) HandleOnboarding(svc *onboarding.Service, verify DeviceVerifier) error {
	o := onboardHandlers{s: s, svc: svc, verify: verify}
	for _, rt := range o.routes() {
		if err := s.Handle(rt); err != nil {
			return err
		}
	}
	return nil
}

type onboardHandlers struct {
	s      *Server
	svc    *onboarding.Service
	verify DeviceVerifier
}

func (o onboardHandlers) routes() []Route {
	creds := []Response{{Status: 200, Description: "The device's credentials.", Body: onboarding.Credentials{}}}
	return []Route{
		{Method: "POST", Path: PathOnboardChallenge, Handler: http.HandlerFunc(o.challenge), Doc: RouteDoc{
			OperationID: "onboardChallenge", Summary: "Offer a device identity; receive a single-use challenge.", Tag: "onboarding",
			Description: "The answer is the same whether or not the identity is registered. The challenge expires after 60 seconds.",
			Request:     onboarding.ChallengeRequest{},
			Responses:   []Response{{Status: 201, Description: "The challenge.", Body: onboarding.ChallengeResponse{}}},
			Problems:    []string{"rate-limited"},
		}},
		{Method: "POST", Path: PathOnboardProof, Handler: http.HandlerFunc(o.proof), Doc: RouteDoc{
			OperationID: "onboardProof", Summary: "Answer a challenge with a proof of possession and a CSR; receive credentials.", Tag: "onboarding",
			Description: "The signature covers the message of docs/protocol.md: context, challenge ID, nonce, server name, SHA-256 of the CSR and the identity.",
			Request:     onboarding.ProofRequest{},
			Responses:   creds,
			Problems:    []string{"rate-limited", "challenge-unknown", "challenge-used", "challenge-expired", "proof-rejected", "device-revoked", "device-suspended", "device-decommissioned", "bad-csr"},
		}},
		{Method: "GET", Path: PathDeviceCredentials, Handler: http.HandlerFunc(o.credentials), Doc: RouteDoc{
			OperationID: "deviceCredentials", Summary: "Fetch the device's current credentials.", Tag: "device",
			Auth: AuthMutualTLS, Responses: creds, Problems: []string{"not-onboarded", "certificate-superseded", "device-revoked", "device-suspended", "device-decommissioned"},
		}},
		{Method: "POST", Path: PathDeviceRenew, Handler: http.HandlerFunc(o.renew), Doc: RouteDoc{
			OperationID: "deviceRenew", Summary: "Renew the device certificate for a new CSR.", Tag: "device",
			Auth: AuthMutualTLS, Request: onboarding.RenewRequest{}, Responses: creds,
			Problems: []string{"not-onboarded", "certificate-superseded", "device-revoked", "device-suspended", "device-decommissioned", "bad-csr", "renewal-too-soon", "renewal-not-due"},
		}},
	}
}

func (o onboardHandlers) challenge(w http.ResponseWriter, r *http.Request) {
	var req onboarding.ChallengeRequest
	if err := decodeJSON(r, maxOnboardingBody, &req); err != nil {
		o.s.writeProblem(w, r, err)
		return
	}
	resp, err := o.svc.Challenge(r.Context(), req, remoteAddr(r))
	if err != nil {
		o.s.writeProblem(w, r, onboardingProblem(err))
		return
	}
	o.s.writeJSON(w, http.StatusCreated, resp)
}

func (o onboardHandlers) proof(w http.ResponseWriter, r *http.Request) {
	var req onboarding.ProofRequest
	if err := decodeJSON(r, maxOnboardingBody, &req); err != nil {
		o.s.writeProblem(w, r, err)
		return
	}
	creds, err := o.svc.Prove(r.Context(), req, remoteAddr(r))
	if err != nil {
		if wait, ok := onboarding.RetryAfter(err); ok { // allocation-unavailable
			w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)))
		}
		o.s.writeProblem(w, r, onboardingProblem(err))
		return
	}
	o.s.writeJSON(w, http.StatusOK, creds)
}

func (o onboardHandlers) credentials(w http.ResponseWriter, r *http.Request) {
	leaf, err := o.clientCertificate(r)
	if err == nil {
		var creds *onboarding.Credentials
		if creds, err = o.svc.Credentials(r.Context(), leaf, remoteAddr(r)); err == nil {
			o.s.writeJSON(w, http.StatusOK, creds)
			return
		}
	}
	o.s.writeProblem(w, r, onboardingProblem(err))
}

func (o onboardHandlers) renew(w http.ResponseWriter, r *http.Request) {
	leaf, err := o.clientCertificate(r)
	if err != nil {
		o.s.writeProblem(w, r, onboardingProblem(err))
		return
	}
	var req onboarding.RenewRequest
	if err := decodeJSON(r, maxOnboardingBody, &req); err != nil {
		o.s.writeProblem(w, r, err)
		return
	}
	creds, err := o.svc.Renew(r.Context(), leaf, channelBinding(r), req, remoteAddr(r))
	if err != nil {
		if wait, ok := onboarding.RetryAfter(err); ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)))
		}
		o.s.writeProblem(w, r, onboardingProblem(err))
		return
	}
	o.s.writeJSON(w, http.StatusOK, creds)
}

// channelBinding is the request's TLS connection's exporter value (RFC
// 9266 tls-exporter), to which a renewal's request may be bound; nil
// without TLS.
func channelBinding(r *http.Request) []byte {
	if r.TLS == nil {
		return nil
	}
	ekm, err := r.TLS.ExportKeyingMaterial(onboarding.ChannelBindingLabel, nil, onboarding.ChannelBindingSize)
	if err != nil {
		return nil
	}
	return ekm
}

// clientCertificate verifies the certificate the TLS handshake received
// (crypto/tls checked the client's possession of its key, not the chain).
func (o onboardHandlers) clientCertificate(r *http.Request) (*x509.Certificate, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 || o.verify == nil {
		return nil, onboarding.ErrNotOnboarded
	}
	chain := make([][]byte, len(r.TLS.PeerCertificates))
	for i, c := range r.TLS.PeerCertificates {
		chain[i] = c.Raw
	}
	leaf, err := o.verify(chain, o.s.now())
	if err != nil {
		return nil, onboarding.ErrNotOnboarded
	}
	return leaf, nil
}

// onboardingProblem maps the service's errors to problem codes; the
// service's messages carry no secret, so a malformed request keeps its
// detail.
func onboardingProblem(err error) error {
	switch code := OnboardingCode(err); code {
	case "":
		return err
	case "malformed-request", "bad-csr", "renewal-not-due", "device-not-locked":
		return NewProblem(code, err.Error())
	default:
		return NewProblem(code, "")
	}
}

// OnboardingCode is the problem code the onboarding routes answer err,
// an error of the onboarding service, with; "" for an internal error.
func OnboardingCode(err error) string {
	switch code := onboarding.ErrorCode(err); code {
	case "malformed":
		return "malformed-request"
	case "revoked", "suspended", "decommissioned", "migrated", "not-locked":
		return "device-" + code
	case "internal":
		return ""
	default:
		return code
	}
}
