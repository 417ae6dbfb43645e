package ota

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hallmark-iot/hallmark/internal/atomicfile"
	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/firmware"
)

// journalFormat versions the agent's journal file.
const journalFormat = "hallmark-ota-agent/v1"

// MaxJournalSize bounds the journal file: an assignment, a status and a
// report, each bounded, fit in a few KiB.
const MaxJournalSize = 16 << 10

// Files the agent keeps beside the device state (docs/ota.md).
const (
	// JournalSuffix names the journal: where the update stands, durably.
	JournalSuffix = ".ota.json"
	// PartialSuffix names the image being downloaded.
	PartialSuffix = ".download"
)

// step is where the agent stands in one assignment. The journal is
// written before the step's action, and each action can be repeated or
// recognised as done, so a process killed at any point resumes correctly.
type step string

const (
	stepDownload step = "download" // fetching into the partial file, from Offset
	stepInstall  step = "install"  // the image is complete and matches the digest
	stepReboot   step = "reboot"   // the inactive slot holds the image; reset and confirm
	stepMigrate  step = "migrate"  // the update booted; re-key the enrolment key
	stepReport   step = "report"   // Outcome waits for the platform's acknowledgement
)

func (s step) valid() bool {
	switch s {
	case stepDownload, stepInstall, stepReboot, stepMigrate, stepReport:
		return true
	}
	return false
}

// journal is the agent's durable state for one assignment.
type journal struct {
	Format     string          `json:"format"`
	CampaignID string          `json:"campaign_id"`
	Image      ImageRef        `json:"image"`
	Migration  *MigrationOrder `json:"migration,omitempty"`
	Step       step            `json:"step"`
	// Offset is how many bytes of the partial file are on disk, synced.
	Offset int64 `json:"offset"`
	// Before is the device's last update status just before the install,
	// so that after a crash the agent can tell whether its install
	// happened (the status changed) or not.
	Before *device.UpdateStatus `json:"before_install,omitempty"`
	// Acked is the latest state the platform acknowledged: a state is
	// reported again only when it was not.
	Acked DeviceState `json:"acknowledged,omitempty"`
	// Outcome is the final report of the step Report.
	Outcome *Report `json:"outcome,omitempty"`
}

// parseJournal reads a journal strictly: one object, no unknown member,
// every field within its rules. The file is the device's own, but a
// truncated or edited one must not steer an install.
func parseJournal(data []byte) (*journal, error) {
	if len(data) > MaxJournalSize {
		return nil, fmt.Errorf("%w: journal larger than %d bytes", ErrMalformed, MaxJournalSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var j journal
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("%w: journal: %v", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: journal: data after the object", ErrMalformed)
	}
	if err := j.check(); err != nil {
		return nil, fmt.Errorf("%w: journal: %v", ErrMalformed, err)
	}
	return &j, nil
}

func (j *journal) check() error {
	switch {
	case j.Format != journalFormat:
		return fmt.Errorf("format %q, want %q", j.Format, journalFormat)
	case !j.Step.valid():
		return fmt.Errorf("step %q", j.Step)
	case j.Offset < 0 || j.Offset > j.Image.Size:
		return fmt.Errorf("offset %d outside the image's %d bytes", j.Offset, j.Image.Size)
	case j.Acked != "" && !j.Acked.Reported():
		return fmt.Errorf("acknowledged state %q", j.Acked)
	case (j.Step == stepReport) != (j.Outcome != nil):
		return errors.New("an outcome belongs to the report step, and only to it")
	}
	a := Assignment{CampaignID: j.CampaignID, Image: j.Image, Migration: j.Migration}
	if err := a.check(); err != nil {
		return err
	}
	if j.Outcome != nil {
		if err := j.Outcome.Check(); err != nil {
			return err
		}
		if j.Outcome.CampaignID != j.CampaignID {
			return errors.New("the outcome is for another campaign")
		}
	}
	return nil
}

// check applies the agent's rules to an assignment before it acts on it.
func (a *Assignment) check() error {
	img := a.Image
	raw, err := hex.DecodeString(img.Digest)
	switch {
	case a.CampaignID == "" || len(a.CampaignID) > 64:
		return errors.New("campaign_id must be 1 to 64 characters")
	case err != nil || len(raw) != 32 || hex.EncodeToString(raw) != img.Digest:
		return errors.New("image digest must be 64 lowercase hex characters")
	case img.Size <= 0 || img.Size > firmware.MaxImageSize:
		return fmt.Errorf("image size %d outside 1 to %d bytes", img.Size, firmware.MaxImageSize)
	case img.Path != PathFirmware+img.Digest:
		// The agent fetches only the image it was told the digest of,
		// from the platform's firmware route, never another URL.
		return fmt.Errorf("image path must be %s followed by the digest", PathFirmware)
	case len(img.Version) > 64 || strings.ContainsFunc(img.Version, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return errors.New("image version must be at most 64 printable characters")
	case a.Migration != nil && a.Migration.TargetAlgorithm == "":
		return errors.New("a migration order needs a target algorithm")
	}
	return nil
}

// loadJournal reads the journal at path; nil, nil when there is none.
func loadJournal(path string) (*journal, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("update journal: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxJournalSize+1))
	if err != nil {
		return nil, fmt.Errorf("update journal %s: %w", path, err)
	}
	j, err := parseJournal(data)
	if err != nil {
		return nil, fmt.Errorf("update journal %s: %w", path, err)
	}
	return j, nil
}

func (j *journal) save(path string) error {
	data, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return fmt.Errorf("update journal: %w", err)
	}
	if err := atomicfile.Write(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("update journal: %w", err)
	}
	return nil
}
