package store

import (
	"context"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Monitoring (docs/lifecycle.md, "Monitoring"): what devices report about
// themselves, and the durable log of what happened to them. The device
// events of a state change are written by the backend in the transaction
// that makes the change, whichever path makes it (an onboarding, a
// renewal, a transition), so the log cannot miss one nor tell of one that
// was rolled back.

// DeviceStatus is the latest status report of a device.
type DeviceStatus struct {
	Identity        identity.ID
	ReceivedAt      time.Time // when the platform received it: the device's last-seen time
	FirmwareVersion string
	SecurityCounter uint32 // the anti-rollback counter in OTP
	BootResult      string
	// EnrolmentAlgorithm and OperationalAlgorithm are the suites of the
	// device's enrolment and operational keys, as it reports them.
	EnrolmentAlgorithm   sigalg.ID
	OperationalAlgorithm sigalg.ID
	Uptime               time.Duration // whole seconds
	RemoteAddr           string
}

// EventKind names what happened to a device.
type EventKind string

// Event kinds.
const (
	EventOnboarded      EventKind = "device.onboarded"
	EventRenewed        EventKind = "device.renewed"
	EventSuspended      EventKind = "device.suspended"
	EventResumed        EventKind = "device.resumed"
	EventRevoked        EventKind = "device.revoked"
	EventDecommissioned EventKind = "device.decommissioned"
	EventReprovisioned  EventKind = "device.reprovisioned"
	// EventCertificateExpiring: a device's current certificate expires
	// within a threshold (Detail names it); once per certificate and
	// threshold.
	EventCertificateExpiring EventKind = "certificate.expiring"
	// EventDeviceSilent: an onboarded device has not reported since a
	// heartbeat interval; once per silence (a report ends it).
	EventDeviceSilent EventKind = "device.silent"
	// EventCloneSuspected: signs that two devices share the device's
	// identity (Detail says which); at most one per device per interval.
	EventCloneSuspected EventKind = "device.clone_suspected"
	// EventFirmwareOutdated: the device reports a firmware version below
	// its product's minimum, or one that cannot be compared with it;
	// once per version reported and minimum.
	EventFirmwareOutdated EventKind = "firmware.outdated"
)

// EventKinds lists every event kind.
var EventKinds = []EventKind{EventOnboarded, EventRenewed, EventSuspended, EventResumed, EventRevoked,
	EventDecommissioned, EventReprovisioned, EventCertificateExpiring, EventDeviceSilent, EventCloneSuspected, EventFirmwareOutdated, EventMigrated}

// Valid reports whether k is a known kind.
func (k EventKind) Valid() bool {
	for _, known := range EventKinds {
		if k == known {
			return true
		}
	}
	return false
}

// DeviceEvent is one entry of the device event log.
type DeviceEvent struct {
	// Seq is assigned by the store, increasing, never reused; a
	// follower's cursor (see ListEvents).
	Seq      int64
	Time     time.Time
	Kind     EventKind
	Identity identity.ID
	// Serial is the certificate an event is about (a renewal's new one,
	// an expiring one); zero otherwise.
	Serial [16]byte
	// Detail is the transition's reason, or what a sweep found.
	Detail string
}

// EventFilter selects device events, oldest first; zero fields match
// everything.
type EventFilter struct {
	Kind     EventKind
	Identity identity.ID
	AfterSeq int64
	Limit    int // zero: 100; at most 1000
	// Newest lists newest first instead, for reading rather than
	// following: the page of events before BeforeSeq (zero: from the
	// newest); AfterSeq is then ignored.
	Newest    bool
	BeforeSeq int64
}

// MonitoringCounts is what the platform's metrics show, read at once.
type MonitoringCounts struct {
	// Devices counts devices by product, then state.
	Devices map[string]map[DeviceState]int
	// Expiring counts current, good certificates expiring after now and
	// within each duration asked for.
	Expiring map[time.Duration]int
	// Silent counts onboarded devices whose last report is before the
	// time asked for their product.
	Silent int
	// Events counts the event log by kind.
	Events map[EventKind]int
}

// Monitoring keeps device status reports and the device event log.
type Monitoring interface {
	// RecordStatus keeps s as its device's latest report and last-seen
	// time, replacing the one before, and ends a silence; it returns
	// what it replaced, read in the same transaction. An unknown device
	// is ErrNotFound and nothing is kept.
	RecordStatus(ctx context.Context, s DeviceStatus) (StatusRecorded, error)
	// GetStatus returns a device's latest report; ErrNotFound if it never
	// reported.
	GetStatus(ctx context.Context, id identity.ID) (DeviceStatus, error)
	// ListEvents returns one page of events in commit order, after the
	// event whose Seq is f.AfterSeq (0: from the start), as ListAudit
	// pages the audit log: a follower polling with the last Seq it saw
	// misses none, even when replicas commit out of order. With one
	// writer (SQLite) commit order is Seq order.
	ListEvents(ctx context.Context, f EventFilter) ([]DeviceEvent, error)
	// NoteExpiringCertificates appends one certificate.expiring event
	// (at now, Detail "within <within>") for up to limit current, good
	// certificates whose NotAfter is after now and at most now+within,
	// each certificate once per within whatever the calls, concurrent
	// ones included. It returns how many it appended.
	NoteExpiringCertificates(ctx context.Context, now time.Time, within time.Duration, limit int) (int, error)
	// NoteSilentDevices appends one device.silent event (at now) for up
	// to limit onboarded devices of product whose last report is before
	// since and that were not noted silent since that report. It returns
	// how many; each call is one range of an index.
	NoteSilentDevices(ctx context.Context, now time.Time, product string, since time.Time, limit int) (int, error)
	// CountMonitoring reads the metrics' counts: certificates expiring
	// after now within each of expiring, and onboarded devices of each
	// product in silentSince whose last report is before its time.
	CountMonitoring(ctx context.Context, now time.Time, expiring []time.Duration, silentSince map[string]time.Time) (MonitoringCounts, error)
}

// ExpiringDetail is the Detail of a certificate.expiring event for a
// threshold, e.g. "within 720h0m0s"; backends share it.
func ExpiringDetail(within time.Duration) string { return "within " + within.String() }

// SilentDetail is the Detail of a device.silent event: the last report.
func SilentDetail(lastSeen time.Time) string {
	return "last seen " + lastSeen.UTC().Format(time.RFC3339)
}
