package app

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/hallmark-iot/hallmark/internal/audit/chain"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// AuditKeyName is the audit key's name in the CA's key manager: the key
// that signs the audit chain's checkpoints (docs/evidence.md). It lives
// where the CA's keys live, so an HSM holds it when it holds them.
const AuditKeyName = "audit"

// AuditKeyPath is where the platform publishes the audit public key.
const AuditKeyPath = "/v1/audit/key"

// startAuditChain makes or finds the audit key, publishes its public key
// and readies the sealer that runAuditChain runs.
func (p *Platform) startAuditChain(ctx context.Context, api *httpapi.Server) error {
	c, ok := p.Store.(store.AuditChain)
	if !ok {
		return fmt.Errorf("audit chain: the %T store keeps no chain", p.Store)
	}
	key, err := ensureAuditKey(ctx, p.keys, p.cfg.CASuite)
	if err != nil {
		return err
	}
	pemKey, err := sigalg.EncodePublicKeyPEM(key.Public())
	if err != nil {
		return fmt.Errorf("audit key: %w", err)
	}
	err = api.Handle(httpapi.Route{Method: "GET", Path: AuditKeyPath, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(pemKey)
	}), Doc: httpapi.RouteDoc{
		OperationID: "auditKey", Summary: "The audit key that signs the audit chain's checkpoints.", Tag: "audit",
		Description: "A PEM public key: give it to `hallmark audit verify --key` to check a log or an export offline (docs/evidence.md).",
		Responses:   []httpapi.Response{{Status: 200, Description: "The public key, PEM.", MediaType: "application/x-pem-file"}},
	}})
	if err != nil {
		return err
	}
	sealer, err := chain.NewSealer(chain.SealerConfig{Chain: c, Key: key, Log: p.cfg.Log, Now: p.cfg.Now,
		CheckpointEvery: p.cfg.AuditCheckpointEvery, CheckpointInterval: p.cfg.AuditCheckpointInterval})
	if err != nil {
		return err
	}
	p.auditSealer = sealer
	return nil
}

// benchWithoutSealer leaves the sealer stopped: only
// BenchmarkOnboardingAuditChain sets it, to measure onboarding without
// the chain beside onboarding with it in one run.
var benchWithoutSealer atomic.Bool

// runAuditChain links and signs the audit log until ctx ends, then signs
// what was committed by then.
func (p *Platform) runAuditChain(ctx context.Context) {
	if p.auditSealer == nil || benchWithoutSealer.Load() {
		return
	}
	_ = p.auditSealer.Run(ctx) // it logs its errors
}

// ensureAuditKey returns the audit key, creating it on first start: ML-DSA-65
// beside an ML-DSA CA where the key store has it, ECDSA P-256 otherwise.
// An existing key of any suite is kept: verifiers already trust it.
func ensureAuditKey(ctx context.Context, km keys.Manager, caSuite sigalg.ID) (crypto.Signer, error) {
	suites := []sigalg.ID{sigalg.ECDSAP256}
	if caSuite == sigalg.MLDSA44 || caSuite == sigalg.MLDSA65 || caSuite == sigalg.MLDSA87 {
		suites = []sigalg.ID{sigalg.MLDSA65, sigalg.ECDSAP256}
	}
	var err error
	for _, suite := range suites {
		_, err = km.CreateKey(ctx, keys.CreateKeyRequest{Name: AuditKeyName, Suite: suite})
		if !errors.Is(err, keys.ErrUnsupported) {
			break
		}
	}
	if err != nil && !errors.Is(err, keys.ErrExists) {
		return nil, fmt.Errorf("audit key %s: %w", AuditKeyName, err)
	}
	signer, err := km.Signer(ctx, AuditKeyName)
	if err != nil {
		return nil, fmt.Errorf("audit key %s: %w", AuditKeyName, err)
	}
	return signer, nil
}
