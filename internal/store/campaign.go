package store

import (
	"context"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Update campaigns (docs/ota.md, "Campaigns"): a campaign's record, the
// waves it rolls out in and one row per targeted device. The rules (who
// is targeted, when a wave opens, when a campaign halts, which report
// moves a device forward) belong to internal/campaign; the store runs
// them (a CampaignDecider) under the device's row lock, and under the
// campaign's row lock only when a report may change the campaign, so
// that every replica sees one order of such reports and one decision.

// CampaignState is where a campaign is in its life.
type CampaignState string

// Campaign states. Halted, cancelled and completed are final.
const (
	CampaignRunning   CampaignState = "running"
	CampaignPaused    CampaignState = "paused"
	CampaignHalted    CampaignState = "halted"
	CampaignCancelled CampaignState = "cancelled"
	CampaignCompleted CampaignState = "completed"
)

// CampaignStates lists every campaign state.
var CampaignStates = []CampaignState{CampaignRunning, CampaignPaused, CampaignHalted, CampaignCancelled, CampaignCompleted}

// Final reports whether s ends the campaign for good.
func (s CampaignState) Final() bool {
	return s == CampaignHalted || s == CampaignCancelled || s == CampaignCompleted
}

// CampaignImage is what a campaign keeps of its image, copied from the
// firmware repository at creation, so that an assignment is answered
// without reading the repository.
type CampaignImage struct {
	Digest          [32]byte
	Version         string
	Size            int64
	SecurityCounter uint32
}

// CampaignWave is one wave: the devices it adds to the rollout and how
// many of them have finished (reached a final state) and failed (failed
// or rolled back).
type CampaignWave struct {
	Size     int
	Finished int
	Failed   int
}

// Campaign is one rollout of an image to a set of devices.
type Campaign struct {
	ID        string // "cmp_" + 16 lowercase hex
	ProductID string
	Image     CampaignImage
	// MigrateTo is the suite a migration campaign moves devices to; ""
	// for a plain update.
	MigrateTo sigalg.ID
	// Target describes the devices targeted, as the administrator asked
	// (for display; the rows are what counts).
	Target string
	// WaveSpec is the waves as given, e.g. "10,25%,100%"; Waves are them
	// resolved against the target, in order.
	WaveSpec string
	Waves    []CampaignWave
	// HaltThreshold and HaltMinFinished are the halt rule: a wave halts
	// the campaign once at least HaltMinFinished of its devices finished
	// and more than HaltThreshold of those failed.
	HaltThreshold   float64
	HaltMinFinished int
	State           CampaignState
	// CurrentWave is the index of the last wave opened: devices of waves
	// up to it may be offered the update.
	CurrentWave int
	// Reason says why the campaign last changed state: the halt rule's
	// finding, or the administrator's reason.
	Reason      string
	DeviceCount int
	CreatedBy   string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// CampaignDevice is one targeted device's part in a campaign. State is
// an ota.DeviceState (pending, offered, downloading, ...), kept as text
// here so the store does not depend on the protocol package.
type CampaignDevice struct {
	CampaignID      string
	Identity        identity.ID
	Wave            int
	State           string
	Reason          string
	Detail          string
	FirmwareVersion string
	UpdatedAt       time.Time
}

// CampaignFilter selects campaigns, newest first; zero fields match
// everything.
type CampaignFilter struct {
	States    []CampaignState
	ProductID string
	Limit     int // zero: 100; at most 1000
}

// CampaignDeviceFilter selects a page of a campaign's devices, by
// identity.
type CampaignDeviceFilter struct {
	State string
	After identity.ID
	Limit int // zero: 100; at most 1000
}

// CampaignCount is how many of a campaign's devices of one wave are in
// one state.
type CampaignCount struct {
	Wave  int
	State string
	N     int
}

// CampaignCandidate is an onboarded device a target may select, with the
// firmware version it last reported ("" if it never did).
type CampaignCandidate struct {
	Identity        identity.ID
	BatchID         string
	Algorithm       sigalg.ID
	FirmwareVersion string
}

// CandidateFilter selects onboarded devices of a product; zero optional
// fields match everything.
type CandidateFilter struct {
	ProductID string
	BatchID   string
	Algorithm sigalg.ID
}

// DeviceChange is what a report does to its device: the row as it is to
// be written (nil: nothing changes) and what to add to the counters of
// the device's wave.
type DeviceChange struct {
	Device           *CampaignDevice
	Finished, Failed int
}

// CampaignUpdate changes a campaign's state.
type CampaignUpdate struct {
	State       CampaignState
	CurrentWave int
	Reason      string
	At          time.Time
}

// CampaignDecider is a decision in two steps, so that reports about
// different devices of one campaign are recorded at once and only a
// report that may change the campaign waits for the campaign's row lock
// (docs/ota.md, "The halt rule").
//
// Device decides, under the device's row lock, what a report does to
// the device, given its row and the campaign as last committed, read
// without the campaign's lock: the campaign's state may change before
// the decision commits, so Device must not depend on it (reports are
// recorded in every campaign state). Its error is returned as it is and
// nothing changes; a change of nothing ends the decision.
//
// NeedsCampaign, given the campaign as Device saw it except for the
// device's wave, whose counters are as they are after the change (exact:
// the store holds the wave's row lock from its increment to commit), and
// the device's row as written, reports whether the campaign may change.
// Only then does the store lock the campaign's row and call Campaign. A
// nil NeedsCampaign always locks.
//
// Campaign decides, under the campaign's row lock, what the campaign
// becomes (nil: nothing), given the campaign and every wave's counters
// as they are now (including the device's change), the device's row as
// written and the change (both zero for a decision about the campaign
// alone). Its error is returned as it is and nothing changes.
type CampaignDecider struct {
	Device        func(c Campaign, d CampaignDevice) (DeviceChange, error)
	NeedsCampaign func(c Campaign, d CampaignDevice, ch DeviceChange) bool
	Campaign      func(c Campaign, d CampaignDevice, ch DeviceChange) (*CampaignUpdate, error)
}

// Campaigns holds campaigns and their devices.
type Campaigns interface {
	// CreateCampaign stores a campaign with its waves and devices, in one
	// transaction; a taken ID is ErrExists, an unknown product or device
	// ErrNotFound. Each device's CampaignID is c.ID. An open campaign
	// some of whose devices another open campaign targets is refused with
	// a *BusyDevicesError, checked in the same transaction under a lock
	// every creation takes (replicas cannot both target a device).
	CreateCampaign(ctx context.Context, c Campaign, devices []CampaignDevice) error
	GetCampaign(ctx context.Context, id string) (Campaign, error)
	ListCampaigns(ctx context.Context, f CampaignFilter) ([]Campaign, error)
	// CampaignCandidates returns every onboarded device of f's product
	// that matches f, by identity, with its last reported firmware.
	CampaignCandidates(ctx context.Context, f CandidateFilter) ([]CampaignCandidate, error)
	// CampaignMembers returns the identities a campaign targets.
	CampaignMembers(ctx context.Context, id string) ([]identity.ID, error)
	// GetCampaignDevice returns one device's row of a campaign;
	// ErrNotFound if the campaign does not target it.
	GetCampaignDevice(ctx context.Context, campaignID string, id identity.ID) (CampaignDevice, error)
	ListCampaignDevices(ctx context.Context, campaignID string, f CampaignDeviceFilter) ([]CampaignDevice, error)
	// DeviceCampaigns returns a device's rows in every campaign, newest
	// campaign first.
	DeviceCampaigns(ctx context.Context, id identity.ID) ([]CampaignDevice, error)
	// CountCampaignDevices counts a campaign's devices by wave and state.
	CountCampaignDevices(ctx context.Context, campaignID string) ([]CampaignCount, error)
	// OfferCampaignDevice moves a pending device to offered at at when
	// the campaign is running and the device's wave is open, and returns
	// its row (changed or not); ErrNotFound if the campaign does not
	// target it.
	OfferCampaignDevice(ctx context.Context, campaignID string, id identity.ID, at time.Time) (CampaignDevice, error)
	// DecideCampaign runs decide's steps in one transaction. When id is
	// not zero it locks the device's row (ErrNotFound if absent), calls
	// decide.Device and writes its change, adjusting the counters of the
	// device's wave; then, when there is no device, or the device changed
	// and decide.NeedsCampaign says so, it locks the campaign's row,
	// calls decide.Campaign on fresh counters and writes its update. Lock
	// order: device, wave, campaign. It returns the campaign (as last
	// read, with the device's wave's counters after the change, when its
	// row was not locked) and the device as written.
	DecideCampaign(ctx context.Context, campaignID string, id identity.ID, decide CampaignDecider) (Campaign, CampaignDevice, error)
}
