package httpapi

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"

	"github.com/hallmark-iot/hallmark/internal/migration"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
)

// Migrator is the post-quantum migration use case (migration.Service).
type Migrator interface {
	Challenge(ctx context.Context, leaf *x509.Certificate, req *migration.ChallengeRequest, addr string) (migration.ChallengeResponse, error)
	Migrate(ctx context.Context, leaf *x509.Certificate, req *migration.Request, addr string) (*migration.Response, error)
}

// HandleMigration adds the migration's device routes (docs/migration.md,
// "The platform's side"), authenticated by the device certificate of the
// identity that migrates, as /v1/device/credentials is.
func (s *Server) HandleMigration(m Migrator, verify DeviceVerifier) error {
	h := migrationHandlers{s: s, m: m, device: onboardHandlers{s: s, verify: verify}}
	for _, rt := range h.routes() {
		if err := s.Handle(rt); err != nil {
			return err
		}
	}
	return nil
}

type migrationHandlers struct {
	s      *Server
	m      Migrator
	device onboardHandlers // for its client certificate check
}

var deviceRefusals = []string{"not-onboarded", "certificate-superseded", "device-revoked", "device-suspended", "device-decommissioned", "device-migrated"}

func (h migrationHandlers) routes() []Route {
	return []Route{
		{Method: "POST", Path: migration.PathMigrateChallenge, Handler: http.HandlerFunc(h.challenge), Doc: RouteDoc{
			OperationID: "migrateChallenge", Summary: "Ask for a single-use migration challenge and the suite to migrate to.", Tag: "device",
			Description: "Only while a migration campaign allows the device one. The challenge expires after 2 minutes. The body is empty or {} for a puf or keygen chip; an inject chip sends its transport key signed by its enrolment key and receives its new key sealed to it (docs/migration.md, \"Inject-class chips\").",
			Auth:        AuthMutualTLS, Request: migration.ChallengeRequest{},
			Responses: []Response{{Status: 201, Description: "The challenge.", Body: migration.ChallengeResponse{}}},
			Problems:  append([]string{"malformed-request", "migration-not-open", "migration-not-allowed", "transport-key-rejected"}, deviceRefusals...),
		}},
		{Method: "POST", Path: migration.PathMigrate, Handler: http.HandlerFunc(h.migrate), Doc: RouteDoc{
			OperationID: "migrate", Summary: "Answer a migration challenge with a continuity proof and a CSR; receive the new identity's credentials.", Tag: "device",
			Description: "The proof is package continuity's (docs/migration.md); the CSR names the new identity and carries the migration's binding. On success the old identity is migrated for good and its certificates revoked (superseded).",
			Auth:        AuthMutualTLS, Request: migration.Request{},
			Responses: []Response{{Status: 200, Description: "The new identity's credentials.", Body: onboarding.Credentials{}}},
			Problems: append([]string{"malformed-request", "challenge-unknown", "challenge-used", "challenge-expired", "continuity-rejected",
				"migration-not-open", "migration-not-allowed", "identity-taken", "bad-csr"}, deviceRefusals...),
		}},
	}
}

func (h migrationHandlers) challenge(w http.ResponseWriter, r *http.Request) {
	leaf, err := h.device.clientCertificate(r)
	var req *migration.ChallengeRequest
	if err == nil {
		req, err = migration.ReadChallengeRequest(r.Body)
	}
	if err == nil {
		var resp migration.ChallengeResponse
		if resp, err = h.m.Challenge(r.Context(), leaf, req, remoteAddr(r)); err == nil {
			h.s.writeJSON(w, http.StatusCreated, resp)
			return
		}
	}
	h.s.writeProblem(w, r, migrationProblem(err))
}

func (h migrationHandlers) migrate(w http.ResponseWriter, r *http.Request) {
	// The certificate first: an unauthenticated client's body is not read.
	leaf, err := h.device.clientCertificate(r)
	if err != nil {
		h.s.writeProblem(w, r, migrationProblem(err))
		return
	}
	var req migration.Request
	if err := decodeJSON(r, migration.MaxRequestBody, &req); err != nil {
		h.s.writeProblem(w, r, err)
		return
	}
	creds, err := h.m.Migrate(r.Context(), leaf, &req, remoteAddr(r))
	if err != nil {
		h.s.writeProblem(w, r, migrationProblem(err))
		return
	}
	h.s.writeJSON(w, http.StatusOK, creds)
}

// migrationProblem maps the service's errors to problems; their messages
// carry no secret, so the refusals that say what to fix keep their detail.
func migrationProblem(err error) error {
	switch code := migration.ErrorCode(err); code {
	case "malformed":
		return NewProblem("malformed-request", err.Error())
	case "too-large":
		return NewProblem("body-too-large", "")
	case "migration-not-open", "challenge-unknown", "challenge-used", "challenge-expired", "identity-taken":
		return NewProblem(code, "")
	case "continuity-rejected", "migration-not-allowed", "transport-key-rejected":
		return NewProblem(code, detailOf(err))
	}
	if errors.Is(err, onboarding.ErrBadCSR) {
		return NewProblem("bad-csr", err.Error())
	}
	return onboardingProblem(err)
}

// detailOf is err's message: the service's refusals name the check that
// failed and the algorithms, never key material.
func detailOf(err error) string { return err.Error() }
