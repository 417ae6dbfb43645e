// Package chain owns the tamper-evident form of the audit log: the
// canonical encoding of an audit event, the hash chain that links every
// event to the one before it, the signed checkpoints of the chain's head,
// the sealer that extends the chain in the background, the verifier that
// checks a whole log offline and names the first bad entry, the export
// format, and the proof that one entry is covered by a signed checkpoint.
//
// hash(pos) = SHA-256(LinkTag || pos || hash(pos-1) || EntryHash(event)),
// with hash(0) all zeros; EntryHash = SHA-256(EntryTag || Canonical(event)).
// docs/evidence.md says what this guarantees and what it does not.
package chain

import (
	"crypto/sha256"
	"encoding/binary"

	"github.com/hallmark-iot/hallmark/internal/store"
)

// Domain-separation tags: a hash of one kind never verifies as another.
const (
	EntryTag      = "hallmark audit entry v1\x00"
	LinkTag       = "hallmark audit link v1\x00"
	CheckpointTag = "hallmark audit checkpoint v1\x00"
)

// Canonical is the one byte encoding of an event that the chain commits
// to: its Seq and Time (Unix microseconds, the stores' precision) as
// big-endian int64s, then Actor, Action, Subject, Outcome, Detail and
// RemoteAddr, each as a big-endian uint32 length and its bytes. Lengths
// make it injective: no two events share an encoding.
func Canonical(e store.AuditEvent) []byte {
	fields := []string{e.Actor, e.Action, e.Subject, e.Outcome, e.Detail, e.RemoteAddr}
	n := 16
	for _, f := range fields {
		n += 4 + len(f)
	}
	b := make([]byte, 0, n)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Seq))
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time.UnixMicro()))
	for _, f := range fields {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// EntryHash is the hash of one event's canonical encoding.
func EntryHash(e store.AuditEvent) [32]byte {
	h := sha256.New()
	h.Write([]byte(EntryTag))
	h.Write(Canonical(e))
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Link is the chain hash at position pos, given the hash before it and the
// entry hash of the event at pos.
func Link(pos int64, prev, entry [32]byte) [32]byte {
	var b [len(LinkTag) + 8 + 64]byte
	n := copy(b[:], LinkTag)
	binary.BigEndian.PutUint64(b[n:], uint64(pos))
	copy(b[n+8:], prev[:])
	copy(b[n+40:], entry[:])
	return sha256.Sum256(b[:])
}

// Seal is the store.SealFunc of this chain.
func Seal(pos int64, prev [32]byte, e store.AuditEvent) [32]byte {
	return Link(pos, prev, EntryHash(e))
}
