package campaign

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/monitoring"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Target selects a campaign's devices: the onboarded devices of Product
// that match every optional field set.
type Target struct {
	Product string
	Batch   string
	// FirmwareBelow selects devices whose last status report names a
	// version that compares below it (monitoring.CompareVersions); a
	// device that never reported, or reported a version that does not
	// compare, is not selected: its version is unknown.
	FirmwareBelow string
	Algorithm     sigalg.ID
	// Devices, when not empty, selects only these identities (at most
	// MaxDevices); listed devices that are not onboarded devices of the
	// product are left out, and counted (Resolution.Unmatched).
	Devices []identity.ID
}

// Check validates the target's fields.
func (t Target) Check() error {
	switch {
	case !audit.ProductIDPattern.MatchString(t.Product):
		return fmt.Errorf("%w: product must be a product ID", ErrInvalid)
	case t.Batch != "" && !audit.BatchPattern.MatchString(t.Batch):
		return fmt.Errorf("%w: batch must be a batch name", ErrInvalid)
	case len(t.Devices) > MaxDevices:
		return fmt.Errorf("%w: devices: at most %d", ErrInvalid, MaxDevices)
	}
	if t.FirmwareBelow != "" {
		if err := monitoring.CheckVersion(t.FirmwareBelow); err != nil {
			return fmt.Errorf("%w: firmware_below: %v", ErrInvalid, err)
		}
	}
	if t.Algorithm != "" {
		if _, err := t.Algorithm.Suite(); err != nil {
			return fmt.Errorf("%w: algorithm %q is not a known suite", ErrInvalid, t.Algorithm)
		}
	}
	seen := make(map[identity.ID]struct{}, len(t.Devices))
	for _, id := range t.Devices {
		if _, dup := seen[id]; dup {
			return fmt.Errorf("%w: devices: %s is listed twice", ErrInvalid, id)
		}
		seen[id] = struct{}{}
	}
	return nil
}

// String describes the target for listings.
func (t Target) String() string {
	parts := []string{"product=" + t.Product}
	if t.Batch != "" {
		parts = append(parts, "batch="+t.Batch)
	}
	if t.FirmwareBelow != "" {
		parts = append(parts, "firmware<"+t.FirmwareBelow)
	}
	if t.Algorithm != "" {
		parts = append(parts, "algorithm="+string(t.Algorithm))
	}
	if len(t.Devices) > 0 {
		parts = append(parts, fmt.Sprintf("listed=%d", len(t.Devices)))
	}
	return strings.Join(parts, " ")
}

// Filter is what the store selects; the rest is selected in Select.
func (t Target) Filter() store.CandidateFilter {
	return store.CandidateFilter{ProductID: t.Product, BatchID: t.Batch, Algorithm: t.Algorithm}
}

// Select returns the identities of candidates the target selects, in
// the candidates' order, and how many listed devices matched none.
func (t Target) Select(candidates []store.CampaignCandidate) (ids []identity.ID, unmatched int) {
	var listed map[identity.ID]struct{}
	if len(t.Devices) > 0 {
		listed = make(map[identity.ID]struct{}, len(t.Devices))
		for _, id := range t.Devices {
			listed[id] = struct{}{}
		}
	}
	var below monitoring.Version
	if t.FirmwareBelow != "" {
		below, _ = monitoring.ParseVersion(t.FirmwareBelow) // checked by Check
	}
	for _, c := range candidates {
		if listed != nil {
			if _, ok := listed[c.Identity]; !ok {
				continue
			}
		}
		if t.FirmwareBelow != "" {
			v, err := monitoring.ParseVersion(c.FirmwareVersion)
			if err != nil || v.Compare(below) >= 0 {
				continue
			}
		}
		ids = append(ids, c.Identity)
	}
	if listed != nil {
		unmatched = len(t.Devices) - len(ids)
	}
	return ids, unmatched
}

// ParseDeviceList reads an explicit device list: one identity (64
// lowercase hex characters) per line; blank lines and lines starting
// with # are skipped; a repeated identity, or more than MaxDevices, is
// refused.
func ParseDeviceList(data []byte) ([]identity.ID, error) {
	var ids []identity.ID
	seen := map[identity.ID]struct{}{}
	for n, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		id, err := identity.Parse(string(line))
		if err != nil {
			return nil, fmt.Errorf("%w: device list line %d: not an identity (64 lowercase hex characters)", ErrInvalid, n+1)
		}
		if _, dup := seen[id]; dup {
			return nil, fmt.Errorf("%w: device list line %d: %s is listed twice", ErrInvalid, n+1, id)
		}
		if len(ids) == MaxDevices {
			return nil, fmt.Errorf("%w: device list: more than %d devices", ErrInvalid, MaxDevices)
		}
		seen[id] = struct{}{}
		ids = append(ids, id)
	}
	return ids, nil
}
