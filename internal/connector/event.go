package connector

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
)

// Event is one entry of the platform's device event log as an event sink
// receives it (docs/lifecycle.md, "Events to your systems"). The relay
// (internal/monitoring/relay) delivers each in log order, at least once.
type Event struct {
	// ID is the same in every delivery of this event to this sink
	// (EventID): a receiver dedupes on it.
	ID string
	// Seq is the event's place in the log (store.DeviceEvent.Seq).
	Seq int64
	// Kind is what happened, e.g. device.revoked (store.EventKind).
	Kind string
	// Time is when it happened.
	Time     time.Time
	Identity identity.ID
	// ProductID is the device's product; empty if the device is unknown.
	ProductID string
	// Serial is the certificate the event is about (a renewal's new one,
	// an expiring one); zero otherwise.
	Serial [16]byte
	// Detail is a transition's reason, or what a sweep found.
	Detail string
}

// EventSink receives device events. A connector that is one implements
// it beside Connector; the platform relays the event log to each.
type EventSink interface {
	// Name identifies the sink: its cursor in the store, its logs and
	// metrics, and its events' IDs.
	Name() string
	// Publish delivers one event. An error wrapping ErrPermanent means
	// retrying cannot help: the relay logs it and skips the event. Any
	// other error is retried, and later events wait for it.
	Publish(ctx context.Context, e Event) error
}

// EventID is the ID of the event with seq delivered to the named sink:
// "evt_" and 128 bits of SHA-256 over a domain string, the name and the
// seq, so it is stable across retries, restarts and replicas, and two
// sinks' IDs differ.
func EventID(sink string, seq int64) string {
	h := sha256.New()
	h.Write([]byte("hallmark device event v1\x00"))
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(sink))))
	h.Write([]byte(sink))
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(seq)))
	return "evt_" + hex.EncodeToString(h.Sum(nil)[:16])
}
