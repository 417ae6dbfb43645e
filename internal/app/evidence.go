package app

import (
	"context"
	"fmt"
	"io"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/evidence"
	"github.com/hallmark-iot/hallmark/internal/firmwarerepo"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
)

// startEvidence adds the evidence pack export (docs/evidence.md,
// "Evidence packs"): packs are signed by the audit key, so an auditor
// checks a pack and the audit chain with the one published key.
func (p *Platform) startEvidence(ctx context.Context, api *httpapi.Server) error {
	st, ok := p.Store.(evidence.Store)
	if !ok {
		return fmt.Errorf("evidence: the %T store keeps no audit chain", p.Store)
	}
	key, err := ensureAuditKey(ctx, p.keys, p.cfg.CASuite)
	if err != nil {
		return err
	}
	blobs, err := firmwarerepo.OpenBlobs(firmwarerepo.BlobDir(p.cfg.DataDir))
	if err != nil {
		return err
	}
	src := evidence.Source{Store: st, Key: key, Now: p.cfg.Now,
		Firmware: func(d [32]byte) (io.ReadCloser, error) { return blobs.Open(d) },
		CAs: func() []evidence.CA {
			var out []evidence.CA
			for _, ca := range p.CAs.All() {
				chain := ca.Chain()
				out = append(out, evidence.CA{Name: ca.Name(), Issuing: chain[0], Root: chain[1]})
			}
			return out
		}}
	rec := audit.NewRecorder(p.Store, p.cfg.Log, p.cfg.Now)
	return api.HandleEvidence(admin.NewEvidence(src, rec, p.cfg.Now))
}
