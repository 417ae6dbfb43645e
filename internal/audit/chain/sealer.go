package chain

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hallmark-iot/hallmark/internal/store"
)

// Sealer defaults (docs/decisions/0010-audit-chain.md). An event is
// linked within about Poll of its commit and signed within about
// CheckpointInterval; a checkpoint costs one signature and one row, so
// signing every 10 s while events arrive costs nothing measurable, and
// nothing at all while the platform is idle.
const (
	DefaultPoll               = time.Second
	DefaultBatch              = 1000
	DefaultCheckpointEvery    = 10000
	DefaultCheckpointInterval = 10 * time.Second
	// finalTimeout bounds the last seal and checkpoint at shutdown.
	finalTimeout = 10 * time.Second
)

// SealerConfig configures a Sealer; zero fields take the defaults.
type SealerConfig struct {
	Chain store.AuditChain
	Key   crypto.Signer // the audit key
	Log   *slog.Logger
	Now   func() time.Time
	// Poll is how often the sealer looks for new events.
	Poll time.Duration
	// Batch is how many events one seal transaction links at most.
	Batch int
	// CheckpointEvery and CheckpointInterval: a checkpoint is signed once
	// the head is this many positions past the last one, or this long
	// after it, whichever comes first (and at shutdown).
	CheckpointEvery    int64
	CheckpointInterval time.Duration
}

// Sealer links committed audit events into the chain and signs
// checkpoints. Several sealers may share a database (replicas): the store
// lets one seal at a time, and a checkpoint another already signed is
// skipped.
type Sealer struct {
	cfg        SealerConfig
	lastSigned int64
	signedAt   time.Time
}

// NewSealer checks cfg and returns a sealer.
func NewSealer(cfg SealerConfig) (*Sealer, error) {
	if cfg.Chain == nil || cfg.Key == nil {
		return nil, errors.New("audit sealer: a chain store and a key are required")
	}
	if _, err := KeyID(cfg.Key.Public()); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.CheckpointEvery <= 0 {
		cfg.CheckpointEvery = DefaultCheckpointEvery
	}
	if cfg.CheckpointInterval <= 0 {
		cfg.CheckpointInterval = DefaultCheckpointInterval
	}
	return &Sealer{cfg: cfg}, nil
}

// Run seals and checkpoints until ctx ends, then once more (a final
// checkpoint of everything committed by then).
func (s *Sealer) Run(ctx context.Context) error {
	if err := s.loadLastCheckpoint(ctx); err != nil {
		s.cfg.Log.Error("audit sealer: read checkpoints", "err", err)
	}
	t := time.NewTicker(s.cfg.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalTimeout)
			defer cancel()
			_, err := s.Step(final, true)
			if err != nil {
				s.cfg.Log.Error("audit sealer: final checkpoint", "err", err)
			}
			return err
		case <-t.C:
			if _, err := s.Step(ctx, false); err != nil && ctx.Err() == nil {
				s.cfg.Log.Error("audit sealer", "err", err)
			}
		}
	}
}

func (s *Sealer) loadLastCheckpoint(ctx context.Context) error {
	return s.cfg.Chain.ScanAuditCheckpoints(ctx, func(c store.AuditCheckpoint) error {
		s.lastSigned, s.signedAt = c.Seq, c.Time
		return nil
	})
}

// Step links every committed event not yet linked, then signs a
// checkpoint if one is due, or if force and the head moved. It returns
// the head.
func (s *Sealer) Step(ctx context.Context, force bool) (store.ChainLink, error) {
	var head store.ChainLink
	for {
		h, n, err := s.cfg.Chain.SealAudit(ctx, s.cfg.Batch, Seal)
		if err != nil {
			return head, fmt.Errorf("seal audit events: %w", err)
		}
		head = h
		if n < s.cfg.Batch {
			break
		}
		// A backlog still gets a checkpoint every CheckpointEvery
		// positions, which bounds the size of a proof (BuildProof).
		if head.Pos-s.lastSigned >= s.cfg.CheckpointEvery {
			if err := s.checkpoint(ctx, head, s.cfg.Now()); err != nil {
				return head, err
			}
		}
	}
	if head.Pos <= s.lastSigned {
		return head, nil
	}
	now := s.cfg.Now()
	due := force || head.Pos-s.lastSigned >= s.cfg.CheckpointEvery || now.Sub(s.signedAt) >= s.cfg.CheckpointInterval
	if !due {
		return head, nil
	}
	return head, s.checkpoint(ctx, head, now)
}

func (s *Sealer) checkpoint(ctx context.Context, head store.ChainLink, now time.Time) error {
	_, first, err := s.cfg.Chain.AuditChainHead(ctx)
	if err != nil {
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	c, err := SignCheckpoint(s.cfg.Key, head, first, now)
	if err != nil {
		return err
	}
	err = s.cfg.Chain.AppendAuditCheckpoint(ctx, c)
	if errors.Is(err, store.ErrConflict) {
		// Another replica signed this head or a later one.
		return s.loadLastCheckpoint(ctx)
	}
	if err != nil {
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	s.lastSigned, s.signedAt = c.Seq, now
	return nil
}
