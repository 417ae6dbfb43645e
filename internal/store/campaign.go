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
// them under the campaign's row lock (a Decide callback), so that every
// replica sees one order of reports and one decision.

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

// CampaignChange is what a Decide callback asks the store to write: the
// device's row (when Device is set), what to add to the counters of the
// device's wave, and the campaign's state, current wave and reason (when
// Campaign is set).
type CampaignChange struct {
	Device           *CampaignDevice
	Finished, Failed int
	Campaign         *CampaignUpdate
}

// CampaignUpdate changes a campaign's state.
type CampaignUpdate struct {
	State       CampaignState
	CurrentWave int
	Reason      string
	At          time.Time
}

// CampaignDecider decides, under the campaign's row lock, what a report
// or an administrative action changes, given the campaign and the
// device's row as they are (a zero row when the call is about the
// campaign alone). Its error is returned as it is and nothing changes.
type CampaignDecider func(c Campaign, d CampaignDevice) (CampaignChange, error)

// Campaigns holds campaigns and their devices.
type Campaigns interface {
	// CreateCampaign stores a campaign with its waves and devices, in one
	// transaction; a taken ID is ErrExists, an unknown product or device
	// ErrNotFound. Each device's CampaignID is c.ID.
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
	// DecideCampaign locks the campaign (and, when id is not zero, the
	// device's row, ErrNotFound if absent), calls decide and writes what
	// it returns, adjusting the wave counters by the device's change; it
	// returns the campaign and device as written.
	DecideCampaign(ctx context.Context, campaignID string, id identity.ID, decide CampaignDecider) (Campaign, CampaignDevice, error)
}
