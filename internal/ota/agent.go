package ota

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
)

// Transport is how the agent reaches the platform: the device-facing
// routes over mutual TLS (httpapi.OTATransport), or in process in tests.
type Transport interface {
	// Assignment asks for the device's open assignment: nil when it has
	// none, and in both cases how long to wait before asking again (zero:
	// the platform did not say).
	Assignment(ctx context.Context) (*Assignment, time.Duration, error)
	// Download fetches the image at path (ImageRef.Path) from byte offset
	// on, with a range request when offset > 0. total is the whole
	// image's size; body starts at offset.
	Download(ctx context.Context, path string, offset int64) (body io.ReadCloser, total int64, err error)
	// Report tells the platform where the device stands; nil means the
	// platform acknowledged it.
	Report(ctx context.Context, r Report) error
}

// ErrRefused marks a transport error the platform meant: a refusal
// (problem+json, 4xx other than 408 and 429), not a failure to reach it.
// A refused report is not sent again; a refused download fails the
// update.
var ErrRefused = errors.New("refused by the platform")

// Agent is the device's update agent: it runs in the device's firmware,
// holds the device state file, and carries one assignment at a time from
// download to confirmation (docs/ota.md, "The update agent").
type Agent struct {
	// Device is the loaded device; the agent boots it if it is not
	// running, and saves it to StatePath at each durable step.
	Device    *device.Device
	StatePath string
	Transport Transport
	// Migrator carries a migration assignment's exchange; nil: the agent
	// reports migrations as failed (migration-unsupported).
	Migrator MigrationTransport
	// CSRs makes the certificate request of a migration
	// (onboardpki.CSRs).
	CSRs onboarding.CSRMaker
	// Onboarding, when set, onboards the new identity with the pending
	// key: how a migration the platform committed, but whose answer the
	// device never saved, is recovered (docs/ota.md). Its transport needs
	// no client certificate.
	Onboarding *onboarding.Client
	// Reconnect, when set, returns a transport that presents the
	// device's current credentials; the agent uses it after a migration,
	// whose old certificate the platform no longer honours.
	Reconnect func(*device.Device) (Transport, error)
	// Out receives one line per step; nil discards them.
	Out io.Writer
}

// Result is what one Step did.
type Result struct {
	// RetryAfter is the platform's wait before the next poll; zero when
	// it did not say, or when the agent did not poll.
	RetryAfter time.Duration
	// Assignment is the assignment the step worked on; nil when the
	// device has none.
	Assignment *Assignment
	// Outcome is the final report acknowledged in this step (booted,
	// migrated, failed or rolled-back); nil when the assignment is not
	// finished.
	Outcome *Report
}

// JournalPath and PartialPath are where the agent keeps its files for the
// device state at statePath.
func JournalPath(statePath string) string { return statePath + JournalSuffix }

// PartialPath is the partial download of the device state at statePath.
func PartialPath(statePath string) string { return statePath + PartialSuffix }

// Step polls once and, when the device has an assignment, carries it as
// far as it goes: to its outcome, or to the first transient error (the
// platform unreachable, the connection cut), after which the next Step
// resumes where this one stopped. A refusal by the ROM, a digest mismatch
// or a rollback is an outcome, reported, not an error.
//
// An assignment whose image is already in the inactive slot is finished
// without polling: the device is mid-update and its outcome must be
// reported whatever the campaign did since.
func (a *Agent) Step(ctx context.Context) (Result, error) {
	if _, _, err := a.Device.Running(); err != nil {
		if err := a.Device.Boot(); err != nil {
			return Result{}, fmt.Errorf("update agent: %w", err)
		}
	}
	j, err := loadJournal(JournalPath(a.StatePath))
	if err != nil {
		return Result{}, err
	}
	if j != nil && j.Step != stepDownload {
		return a.run(ctx, j, Result{})
	}
	asg, retry, err := a.Transport.Assignment(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("update agent: poll: %w", err)
	}
	res := Result{RetryAfter: retry, Assignment: asg}
	if asg == nil {
		// A paused campaign answers none; a partial download waits for it.
		return res, nil
	}
	if err := asg.check(); err != nil {
		return res, fmt.Errorf("update agent: %w: assignment: %v", ErrMalformed, err)
	}
	if j != nil && (j.CampaignID != asg.CampaignID || j.Image.Digest != asg.Image.Digest) {
		a.printf("discarding the partial download of %s: the assignment changed", short(j.Image.Digest))
		if err := a.forget(); err != nil {
			return res, err
		}
		j = nil
	}
	if j == nil {
		j = &journal{Format: journalFormat, CampaignID: asg.CampaignID, Image: asg.Image, Migration: asg.Migration, Step: stepDownload}
		if err := j.save(JournalPath(a.StatePath)); err != nil {
			return res, err
		}
		a.printf("assignment: campaign %s, firmware %s (%d bytes, SHA-256 %s)", asg.CampaignID, asg.Image.Version, asg.Image.Size, short(asg.Image.Digest))
	}
	return a.run(ctx, j, res)
}

// run advances j step by step until the assignment is finished or an
// error stops it.
func (a *Agent) run(ctx context.Context, j *journal, res Result) (Result, error) {
	if res.Assignment == nil {
		res.Assignment = &Assignment{CampaignID: j.CampaignID, Image: j.Image, Migration: j.Migration}
	}
	for {
		var err error
		switch j.Step {
		case stepDownload:
			err = a.download(ctx, j)
		case stepInstall:
			err = a.install(j)
		case stepReboot:
			err = a.reboot(ctx, j)
		case stepMigrate:
			err = a.migrate(ctx, j)
		case stepReport:
			var done bool
			if done, err = a.finish(ctx, j); done {
				res.Outcome = j.Outcome
				return res, a.forget()
			}
		}
		if err != nil {
			return res, fmt.Errorf("update agent: %w", err)
		}
	}
}

// conclude records the assignment's final report, durably, before it is
// sent.
func (a *Agent) conclude(j *journal, state DeviceState, reason, detail string) error {
	if len(detail) > MaxDetail {
		detail = detail[:MaxDetail]
	}
	j.Outcome = &Report{CampaignID: j.CampaignID, State: state, Reason: reason, Detail: detail, FirmwareVersion: a.runningVersion()}
	j.Step = stepReport
	switch state {
	case StateFailed, StateRolledBack:
		a.printf("%s: %s [reason %s]; firmware %s runs", state, detail, reason, j.Outcome.FirmwareVersion)
	}
	return j.save(JournalPath(a.StatePath))
}

// finish sends the final report; done once it is acknowledged and
// nothing follows. A booted update of a migration assignment goes on to
// the migration instead.
func (a *Agent) finish(ctx context.Context, j *journal) (done bool, err error) {
	if err := a.report(ctx, j, *j.Outcome); err != nil {
		return false, err
	}
	if j.Outcome.State == StateBooted && j.Migration != nil {
		j.Step, j.Outcome = stepMigrate, nil
		return false, j.save(JournalPath(a.StatePath))
	}
	return true, nil
}

// report sends r unless the platform already acknowledged its state. A
// refusal counts as an answer: sending it again would be refused again.
func (a *Agent) report(ctx context.Context, j *journal, r Report) error {
	if j.Acked == r.State {
		return nil
	}
	r.CampaignID = j.CampaignID
	if r.FirmwareVersion == "" {
		r.FirmwareVersion = a.runningVersion()
	}
	err := a.Transport.Report(ctx, r)
	switch {
	case errors.Is(err, ErrRefused):
		a.printf("the platform refused the %s report: %v", r.State, err)
	case err != nil:
		return fmt.Errorf("report %s: %w", r.State, err)
	default:
		a.printf("reported: %s", r.State)
	}
	j.Acked = r.State
	return j.save(JournalPath(a.StatePath))
}

// forget removes the journal and any partial download: the assignment
// is finished or abandoned.
func (a *Agent) forget() error {
	for _, p := range []string{PartialPath(a.StatePath), JournalPath(a.StatePath)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("update agent: %w", err)
		}
	}
	return nil
}

func (a *Agent) saveDevice() error { return a.Device.Save(a.StatePath) }

func (a *Agent) runningVersion() string {
	h, _, err := a.Device.Running()
	if err != nil {
		return ""
	}
	return h.Version.String()
}

func (a *Agent) printf(format string, args ...any) {
	if a.Out != nil {
		fmt.Fprintf(a.Out, format+"\n", args...)
	}
}

func short(digest string) string {
	if len(digest) > 12 {
		return digest[:12] + "…"
	}
	return digest
}
