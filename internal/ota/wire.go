// Package ota owns the over-the-air update protocol between a device's
// update agent and the platform (docs/ota.md): the messages both sides
// exchange over mutual TLS, the per-device states of a campaign, and the
// update agent that runs on the (simulated) device. The platform's side
// of a campaign lives in internal/campaign, the firmware repository in
// internal/firmwarerepo, and the key migration a campaign can carry in
// internal/migration.
package ota

import (
	"fmt"
	"regexp"
	"slices"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Device-facing routes, all under mutual TLS with the device certificate
// (as /v1/device/credentials).
const (
	// PathUpdate: GET answers the device's open assignment (200,
	// Assignment) or that it has none (204); either carries Retry-After,
	// the seconds until the device should ask again.
	PathUpdate = "/v1/device/update"
	// PathUpdateReport: POST a Report; 204.
	PathUpdateReport = "/v1/device/update/report"
	// PathFirmware + hex digest: GET the image, with Range requests (206)
	// so an interrupted download resumes.
	PathFirmware = "/v1/device/firmware/"
)

// DeviceState is where one device stands in a campaign.
type DeviceState string

// Device states, in the order a successful update passes them. Booted is
// the success of an update (the new image runs and was confirmed);
// Migrated that of a migration campaign (the device proved continuity
// and holds credentials for its new identity). Failed and RolledBack end
// a device's part with a Reason.
const (
	StatePending     DeviceState = "pending"     // targeted, its wave not open yet or not asked
	StateOffered     DeviceState = "offered"     // the device fetched its assignment
	StateDownloading DeviceState = "downloading" // reported by the agent
	StateInstalled   DeviceState = "installed"   // the inactive slot holds the image, checked by the ROM's rules
	StateBooted      DeviceState = "booted"      // the new image booted and was confirmed
	StateMigrated    DeviceState = "migrated"    // a migration completed (migration campaigns)
	StateFailed      DeviceState = "failed"      // refused or failed, with a reason; the old image runs
	StateRolledBack  DeviceState = "rolled-back" // the new image did not boot; the previous slot runs
)

// DeviceStates lists every state.
var DeviceStates = []DeviceState{StatePending, StateOffered, StateDownloading, StateInstalled, StateBooted,
	StateMigrated, StateFailed, StateRolledBack}

// Terminal reports whether s ends a device's part in a campaign.
func (s DeviceState) Terminal() bool {
	return s == StateBooted || s == StateMigrated || s == StateFailed || s == StateRolledBack
}

// Reported reports whether a device may report s (the platform sets
// pending and offered itself).
func (s DeviceState) Reported() bool {
	return slices.Contains(DeviceStates, s) && s != StatePending && s != StateOffered
}

// Limits of the messages.
const (
	MaxReportBody = 2 << 10
	MaxReason     = 64
	MaxDetail     = 256
)

// reasonCode is what a reason may be: the stable codes of
// device.ReasonCode and firmware.ReasonCode, or the agent's own
// (download, digest-mismatch...).
var reasonCode = regexp.MustCompile(`^[a-z][a-z0-9-]{0,63}$`)

// Assignment is a device's open part in a campaign.
type Assignment struct {
	CampaignID string   `json:"campaign_id"`
	Image      ImageRef `json:"image"`
	// Migration, when set, asks the device to move its enrolment key to
	// another suite once the image is confirmed (docs/migration.md).
	Migration *MigrationOrder `json:"migration,omitempty"`
}

// ImageRef names the image to install.
type ImageRef struct {
	// Digest is the SHA-256 of the whole image file, lowercase hex: the
	// agent checks the download against it before anything else.
	Digest          string `json:"digest"`
	Size            int64  `json:"size"`
	Version         string `json:"version"`
	SecurityCounter uint32 `json:"security_counter"`
	// Path is where to download it: PathFirmware + Digest, relative to
	// the platform's URL.
	Path string `json:"path"`
}

// MigrationOrder names the suite a migration campaign moves the device's
// enrolment key to.
type MigrationOrder struct {
	TargetAlgorithm sigalg.ID `json:"target_algorithm"`
}

// Report is what the agent tells the platform about its assignment.
type Report struct {
	CampaignID string      `json:"campaign_id"`
	State      DeviceState `json:"state"`
	// Reason is the stable code of a failure or rollback (required for
	// those, empty otherwise), e.g. rollback, signature, no-boot.
	Reason string `json:"reason,omitempty"`
	// Detail is free text for operators, bounded; never a secret.
	Detail string `json:"detail,omitempty"`
	// FirmwareVersion is the version running once the report's state is
	// reached.
	FirmwareVersion string `json:"firmware_version,omitempty"`
}

// Check applies a report's rules.
func (r Report) Check() error {
	switch {
	case r.CampaignID == "" || len(r.CampaignID) > 64:
		return fmt.Errorf("%w: campaign_id must be 1 to 64 characters", ErrMalformed)
	case !r.State.Reported():
		return fmt.Errorf("%w: state must be one of downloading, installed, booted, migrated, failed, rolled-back", ErrMalformed)
	case (r.State == StateFailed || r.State == StateRolledBack) != (r.Reason != ""):
		return fmt.Errorf("%w: a reason is required for failed and rolled-back, and only for them", ErrMalformed)
	case r.Reason != "" && !reasonCode.MatchString(r.Reason):
		return fmt.Errorf("%w: reason must be a code of 1 to %d characters of [a-z0-9-]", ErrMalformed, MaxReason)
	case len(r.Detail) > MaxDetail:
		return fmt.Errorf("%w: detail is longer than %d bytes", ErrMalformed, MaxDetail)
	case len(r.FirmwareVersion) > 64:
		return fmt.Errorf("%w: firmware_version is longer than 64 bytes", ErrMalformed)
	}
	return nil
}
