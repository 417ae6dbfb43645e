package chain

import (
	"context"
	"crypto"
	"errors"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/store"
)

// ErrNoProof reports a position no signed checkpoint covers yet, or one
// the log no longer holds.
var ErrNoProof = errors.New("no signed checkpoint covers this audit entry")

// Proof shows that Event sits at position Pos of the chain whose head at
// Checkpoint.Seq the audit key signed: from Prev (the hash at Pos-1) and
// the entry hashes of the positions after Pos up to the checkpoint, the
// links recompute to the signed head.
type Proof struct {
	Pos        int64
	Prev       [32]byte
	Event      store.AuditEvent
	Following  [][32]byte // EntryHash of positions Pos+1 … Checkpoint.Seq
	Checkpoint store.AuditCheckpoint
}

// Verify checks the proof against pub, the audit key.
func (p Proof) Verify(pub crypto.PublicKey) error {
	if err := VerifyCheckpoint(pub, p.Checkpoint); err != nil {
		return err
	}
	if p.Pos < 1 || p.Checkpoint.Seq != p.Pos+int64(len(p.Following)) {
		return fmt.Errorf("%w: the proof's positions do not reach checkpoint %d", ErrTampered, p.Checkpoint.Seq)
	}
	h := Seal(p.Pos, p.Prev, p.Event)
	for i, e := range p.Following {
		h = Link(p.Pos+1+int64(i), h, e)
	}
	if h != p.Checkpoint.Head {
		return fmt.Errorf("%w: entry %d does not lead to the head signed in checkpoint %d", ErrTampered, p.Pos, p.Checkpoint.Seq)
	}
	return nil
}

// BuildProof returns the proof for position pos from the first checkpoint
// at or after it. Its size grows with the distance to that checkpoint
// (at most SealerConfig.CheckpointEvery entry hashes).
func BuildProof(ctx context.Context, src store.AuditChain, pos int64) (Proof, error) {
	p := Proof{Pos: pos}
	found := false
	err := src.ScanAuditCheckpoints(ctx, func(c store.AuditCheckpoint) error {
		if c.Seq >= pos {
			p.Checkpoint, found = c, true
			return errStop
		}
		if c.Seq == pos-1 {
			p.Prev = c.Head // the anchor, if pos-1 was pruned
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return Proof{}, fmt.Errorf("audit proof: %w", err)
	}
	if !found || pos < 1 {
		return Proof{}, fmt.Errorf("%w: position %d", ErrNoProof, pos)
	}
	seen := false
	err = src.ScanAuditChain(ctx, max(pos-1, 1), func(r store.ChainRecord) error {
		switch {
		case r.Link.Pos == 0 || r.Link.Pos > p.Checkpoint.Seq:
			return errStop
		case r.Link.Pos == pos-1:
			p.Prev = r.Link.Hash
		case r.Link.Pos == pos:
			if r.Missing {
				return fmt.Errorf("%w: the event at position %d is gone", ErrNoProof, pos)
			}
			p.Event, seen = r.Event, true
		case r.Missing:
			return fmt.Errorf("%w: the event at position %d is gone", ErrNoProof, r.Link.Pos)
		default:
			p.Following = append(p.Following, EntryHash(r.Event))
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return Proof{}, fmt.Errorf("audit proof: %w", err)
	}
	if !seen {
		return Proof{}, fmt.Errorf("%w: position %d is not in the log", ErrNoProof, pos)
	}
	return p, nil
}
