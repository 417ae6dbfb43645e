package store

import (
	"context"
	"time"
)

// The hash chain over the audit log (internal/audit/chain computes it;
// docs/evidence.md describes it). The backends keep the chain beside the
// events, in tables that refuse UPDATE and DELETE like audit_events: the
// events are appended on the hot path as before, and a sealer links the
// committed ones into the chain in order, one sealer at a time.

// ChainLink is one position of the audit chain: the event it seals and the
// chain hash up to and including it.
type ChainLink struct {
	Pos      int64 // 1, 2, 3, …: the position in the chain, without gaps
	EventSeq int64 // the AuditEvent.Seq it seals
	Hash     [32]byte
}

// AuditCheckpoint is a signed statement of the chain's head: the hash at
// position Seq, and First, the oldest position the live log still held
// when it was signed (1 until a prune).
type AuditCheckpoint struct {
	Seq       int64
	Head      [32]byte
	First     int64
	Time      time.Time
	KeyID     string // hex SHA-256 of the signing key's SubjectPublicKeyInfo
	Alg       string // the sigalg suite
	Signature []byte
}

// ChainRecord is what a scan of the chain yields, in chain order: a link
// and the event it names (Missing when that event is no longer in the
// table), then every event no link names (Link.Pos zero), in the log's
// order. Early marks such an unlinked event that sorts before the event
// of the chain's head: it cannot be an unsealed newcomer.
type ChainRecord struct {
	Link    ChainLink
	Event   AuditEvent
	Missing bool
	Early   bool
}

// SealFunc computes the chain hash of position pos from the previous
// hash and the event.
type SealFunc func(pos int64, prev [32]byte, e AuditEvent) [32]byte

// AuditChain is the chain's storage, found on a Store by type assertion.
type AuditChain interface {
	// SealAudit links up to limit committed, unlinked events into the
	// chain in the log's order and returns the new head (a zero link if
	// the chain is empty) and how many it linked. Only one SealAudit runs
	// at a time across every process sharing the database, and it never
	// skips an event that commits after a later one was linked.
	SealAudit(ctx context.Context, limit int, seal SealFunc) (ChainLink, int, error)
	// AuditChainHead returns the newest link and the oldest live position
	// (zero links: a zero link and 1).
	AuditChainHead(ctx context.Context) (head ChainLink, first int64, err error)
	// AppendAuditCheckpoint stores a signed checkpoint; its Seq must be a
	// position the chain holds and larger than every stored checkpoint's.
	AppendAuditCheckpoint(ctx context.Context, c AuditCheckpoint) error
	// ScanAuditCheckpoints calls fn for every stored checkpoint, by Seq.
	ScanAuditCheckpoints(ctx context.Context, fn func(AuditCheckpoint) error) error
	// ScanAuditChain calls fn for every link from position from on, then
	// for every unlinked event (ChainRecord). It streams: the log may be
	// far larger than memory.
	ScanAuditChain(ctx context.Context, from int64, fn func(ChainRecord) error) error
	// PruneAudit deletes the links at positions up to through and their
	// events, and the checkpoints below through, in one transaction;
	// through must be the Seq of a stored checkpoint, which stays as the
	// anchor of what remains. It returns how many links it deleted.
	PruneAudit(ctx context.Context, through int64) (int64, error)
}
