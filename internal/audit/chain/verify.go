package chain

import (
	"crypto"
	"errors"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/store"
)

// How a log failed verification (Failure.Kind).
const (
	Changed   = "changed"   // an event's content no longer hashes to its link
	Removed   = "removed"   // a position, or the event it names, is gone
	Inserted  = "inserted"  // an event sits before the head but in no link
	Reordered = "reordered" // two neighbouring events swapped places
	Truncated = "truncated" // a signed checkpoint covers positions the log lacks
	Rewritten = "rewritten" // the links were recomputed: a signed head differs
	Forged    = "forged"    // a checkpoint's signature does not verify
)

// ErrTampered is wrapped by every *Failure, for callers that only branch.
var ErrTampered = errors.New("audit log fails verification")

// Failure names the first place a log fails verification.
type Failure struct {
	Kind       string
	Pos        int64 // chain position, zero if none applies
	EventSeq   int64 // the event's Seq, zero if unknown
	Checkpoint int64 // the checkpoint involved, zero if none
	Detail     string
}

func (f *Failure) Error() string {
	var where string
	switch {
	case f.Pos != 0 && f.EventSeq != 0:
		where = fmt.Sprintf("entry %d (event seq %d)", f.Pos, f.EventSeq)
	case f.Pos != 0:
		where = fmt.Sprintf("entry %d", f.Pos)
	case f.EventSeq != 0:
		where = fmt.Sprintf("event seq %d", f.EventSeq)
	default:
		where = "log"
	}
	if f.Kind == Forged {
		where = fmt.Sprintf("checkpoint %d", f.Checkpoint)
	}
	return fmt.Sprintf("audit chain: %s %s: %s", where, f.Kind, f.Detail)
}

func (f *Failure) Unwrap() error { return ErrTampered }

// Report summarises a log that verified.
type Report struct {
	Entries     int64 // linked entries checked
	First, Head int64 // oldest and newest position (zero: none)
	Checkpoints int   // signed checkpoints checked
	LastSigned  int64 // the newest signed position (zero: none)
	Unsigned    int64 // linked positions after LastSigned
	Unlinked    int64 // events not yet in the chain (the sealer's backlog)
}

// Verifier checks a log streamed to it: every checkpoint first (Checkpoint),
// then every record in chain order (Record), then Finish. It keeps O(1)
// state per entry, so a log of millions of entries verifies in constant
// memory apart from the checkpoints. The first failure sticks.
type Verifier struct {
	pub     crypto.PublicKey
	cps     map[int64]store.AuditCheckpoint
	lastCP  int64
	floor   int64 // the newest signed First: older positions were pruned
	prev    [32]byte
	pos     int64 // the last position checked; zero before the first
	pending *mismatch
	fail    *Failure
	report  Report
}

// mismatch is a link whose event did not hash to it, held for one record
// to tell a swap of neighbours (reordered) from an edit (changed).
type mismatch struct {
	pos      int64
	prev     [32]byte
	stored   [32]byte
	eventSeq int64
}

// NewVerifier returns a verifier for logs signed with pub, the audit key.
func NewVerifier(pub crypto.PublicKey) *Verifier {
	return &Verifier{pub: pub, cps: map[int64]store.AuditCheckpoint{}, floor: 1}
}

func (v *Verifier) failf(kind string, pos, eventSeq, cp int64, format string, args ...any) error {
	if v.fail == nil {
		v.fail = &Failure{Kind: kind, Pos: pos, EventSeq: eventSeq, Checkpoint: cp, Detail: fmt.Sprintf(format, args...)}
	}
	return v.fail
}

// Checkpoint adds a checkpoint; they must come by increasing Seq, before
// any record.
func (v *Verifier) Checkpoint(c store.AuditCheckpoint) error {
	if v.fail != nil {
		return v.fail
	}
	if err := VerifyCheckpoint(v.pub, c); err != nil {
		return v.failf(Forged, 0, 0, c.Seq, "%v", err)
	}
	if c.Seq <= v.lastCP || c.Seq < 1 || c.First < 1 || c.First > c.Seq+1 {
		return v.failf(Forged, 0, 0, c.Seq, "signed but out of order (after checkpoint %d) or inconsistent (first %d)", v.lastCP, c.First)
	}
	v.cps[c.Seq], v.lastCP = c, c.Seq
	v.floor = max(v.floor, c.First)
	v.report.Checkpoints++
	v.report.LastSigned = c.Seq
	return nil
}

// Witness adds a checkpoint obtained outside the log (from an earlier
// export, kept elsewhere), after the log's own checkpoints and before any
// record. The log must agree with it: a log checkpoint of the same
// position must sign the same head, and a missing one still binds the
// entries (deleting the newest checkpoints with the entries they sign no
// longer passes). A witness older than every log checkpoint is about
// pruned history, which the archives hold, and is only checked for its
// signature.
func (v *Verifier) Witness(c store.AuditCheckpoint) error {
	if v.fail != nil {
		return v.fail
	}
	if err := VerifyCheckpoint(v.pub, c); err != nil {
		return v.failf(Forged, 0, 0, c.Seq, "witness: %v", err)
	}
	if have, ok := v.cps[c.Seq]; ok {
		if have.Head != c.Head {
			return v.failf(Rewritten, c.Seq, 0, c.Seq, "the log's checkpoint %d signs another head than the witnessed one", c.Seq)
		}
		return nil
	}
	if oldest := v.oldestCP(); oldest != 0 && c.Seq < oldest {
		return nil
	}
	v.cps[c.Seq] = c
	if c.Seq > v.lastCP {
		v.lastCP, v.report.LastSigned = c.Seq, c.Seq
	}
	v.floor = max(v.floor, c.First)
	v.report.Checkpoints++
	return nil
}

// Record checks the next record of a scan (store.ChainRecord order).
func (v *Verifier) Record(r store.ChainRecord) error {
	if v.fail != nil {
		return v.fail
	}
	if r.Link.Pos == 0 {
		return v.unlinked(r)
	}
	if v.pending != nil {
		return v.resolve(&r)
	}
	if err := v.position(r); err != nil {
		return err
	}
	if r.Missing {
		return v.failf(Removed, r.Link.Pos, r.Link.EventSeq, 0, "the event this position seals was deleted")
	}
	got := Seal(r.Link.Pos, v.prev, r.Event)
	if got != r.Link.Hash {
		v.pending = &mismatch{pos: r.Link.Pos, prev: v.prev, stored: r.Link.Hash, eventSeq: r.Event.Seq}
		v.pos = r.Link.Pos
		return nil
	}
	return v.accept(r.Link.Pos, got)
}

// position checks that r comes right after the last position, or, for the
// first record, that it starts where the signed floor says and is anchored
// by a checkpoint.
func (v *Verifier) position(r store.ChainRecord) error {
	pos := r.Link.Pos
	if v.pos == 0 {
		// The log may start after the newest signed First only where a
		// prune left it: at an anchoring checkpoint older than any other.
		anchor, anchored := v.cps[pos-1]
		if pos > v.floor && (!anchored || v.oldestCP() < pos-1) {
			return v.failf(Removed, v.floor, 0, 0, "positions %d to %d are missing from the start of the log", v.floor, pos-1)
		}
		if pos > 1 {
			if !anchored {
				return v.failf(Removed, pos-1, 0, 0, "the log starts at position %d but no signed checkpoint anchors position %d", pos, pos-1)
			}
			v.prev = anchor.Head
		}
		v.report.First = pos
		return nil
	}
	switch {
	case pos > v.pos+1:
		return v.failf(Removed, v.pos+1, 0, 0, "positions %d to %d are missing", v.pos+1, pos-1)
	case pos <= v.pos:
		return v.failf(Reordered, pos, r.Link.EventSeq, 0, "position %d comes after position %d", pos, v.pos)
	}
	return nil
}

// oldestCP is the Seq of the oldest checkpoint (zero: none).
func (v *Verifier) oldestCP() int64 {
	oldest := int64(0)
	for seq := range v.cps {
		if oldest == 0 || seq < oldest {
			oldest = seq
		}
	}
	return oldest
}

// accept moves past a position whose event hashed to its link, checking
// the signed head there.
func (v *Verifier) accept(pos int64, hash [32]byte) error {
	if c, ok := v.cps[pos]; ok && c.Head != hash {
		from := int64(1)
		for p := range v.cps {
			if p < pos && p+1 > from {
				from = p + 1
			}
		}
		return v.failf(Rewritten, max(from, v.report.First), 0, pos,
			"the links from position %d to %d were recomputed: they do not end at the head signed in checkpoint %d", max(from, v.report.First), pos, pos)
	}
	v.prev, v.pos = hash, pos
	v.report.Entries++
	v.report.Head = pos
	return nil
}

// resolve decides a pending mismatch with the record after it: if that
// record's event hashes to the mismatched link, the two were swapped.
func (v *Verifier) resolve(next *store.ChainRecord) error {
	m := v.pending
	if next != nil && next.Link.Pos == m.pos+1 && !next.Missing {
		// Swapped links name each other's events; swapped rows keep
		// their places but exchange seq numbers.
		renumbered := next.Event
		renumbered.Seq = m.eventSeq
		if Seal(m.pos, m.prev, next.Event) == m.stored || Seal(m.pos, m.prev, renumbered) == m.stored {
			return v.failf(Reordered, m.pos, m.eventSeq, 0, "its event and the one at position %d swapped places", m.pos+1)
		}
	}
	return v.failf(Changed, m.pos, m.eventSeq, 0, "its content no longer matches the chain")
}

func (v *Verifier) unlinked(r store.ChainRecord) error {
	if v.pending != nil {
		return v.resolve(nil)
	}
	if r.Early {
		return v.failf(Inserted, 0, r.Event.Seq, 0, "the event is in no link but sorts before the chain's head")
	}
	v.report.Unlinked++
	return nil
}

// Finish ends the stream and returns the report, or the first failure.
func (v *Verifier) Finish() (Report, error) {
	if v.fail != nil {
		return Report{}, v.fail
	}
	if v.pending != nil {
		return Report{}, v.resolve(nil)
	}
	if v.lastCP > v.pos {
		return Report{}, v.failf(Truncated, v.pos+1, 0, v.lastCP,
			"the log ends at position %d but checkpoint %d signs position %d", v.pos, v.lastCP, v.lastCP)
	}
	v.report.Unsigned = v.report.Head - v.report.LastSigned
	if v.report.LastSigned == 0 {
		v.report.Unsigned = v.report.Entries
	}
	return v.report, nil
}
