package device

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/firmware"
)

// The two firmware slots.
const (
	slotA = "a"
	slotB = "b"
)

// States of an update in the inactive slot.
const (
	updateInstalled = "installed" // written and checked, not yet booted
	updateTrial     = "trial"     // booted once, not yet confirmed
)

// NoBootMarker starts the payload of a simulated firmware that crashes
// before it can confirm itself. The simulator runs no machine code, so
// this is how a test or a demo ships "an image that does not boot": the
// ROM verifies and starts it, it dies, the watchdog resets the chip, and
// the ROM falls back to the previous slot, all within one Boot.
const NoBootMarker = "hallmark simulated firmware: crash before confirm\n"

func crashes(payload []byte) bool { return bytes.HasPrefix(payload, []byte(NoBootMarker)) }

// Errors of the update path.
var (
	// ErrNoBoot reports firmware that the ROM accepted but that crashed
	// before it could run: an update that does so is rolled back.
	ErrNoBoot = errors.New("firmware did not boot")
	// ErrUpdateInProgress reports an install while an update runs on
	// trial: its fallback is the image the install would overwrite.
	ErrUpdateInProgress = errors.New("an update is running on trial; confirm it or reset first")
	// ErrNoTrial reports a confirmation with no update running on trial.
	ErrNoTrial = errors.New("no update is running on trial")
)

// UpdateOutcome is where the latest update got to.
type UpdateOutcome string

// Update outcomes, in the order an update goes through them.
const (
	UpdateInstalled  UpdateOutcome = "installed"   // in the inactive slot, checked
	UpdateBooted     UpdateOutcome = "booted"      // running on trial
	UpdateConfirmed  UpdateOutcome = "confirmed"   // the active slot; counter and retirements burned
	UpdateRolledBack UpdateOutcome = "rolled-back" // the previous slot runs again; see Reason
)

// Rollback reasons of the device itself; the ROM's refusals use
// firmware.ReasonCode's codes.
const (
	ReasonNoBoot       = "no-boot"       // the image started and crashed before confirming
	ReasonNotConfirmed = "not-confirmed" // the trial ran but nobody confirmed it
)

// UpdateStatus is the outcome of the latest update, kept in flash so the
// update agent can report it after a reset.
type UpdateStatus struct {
	Outcome         UpdateOutcome `json:"outcome"`
	Slot            string        `json:"slot"`
	Version         string        `json:"version"`
	SecurityCounter uint32        `json:"security_counter"`
	// Reason is a stable code when the update was rolled back.
	Reason string `json:"reason,omitempty"`
	// Detail says what happened in words; it holds no secret.
	Detail string `json:"detail,omitempty"`
}

// bootControl is the state of an update in the inactive slot.
type bootControl struct {
	Slot  string `json:"slot"`
	State string `json:"state"`
}

func otherSlot(s string) string {
	if s == slotA {
		return slotB
	}
	return slotA
}

func (d *Device) activeSlot() string { return d.st.Flash.Active }

func (d *Device) slot(name string) *[]byte {
	if name == slotB {
		return &d.st.Flash.SlotB
	}
	return &d.st.Flash.SlotA
}

// InstallUpdate writes image into the inactive slot after making the ROM's
// own checks (parse, signatures by every live root, retirement, rollback,
// decryption), so that an image the ROM would refuse never displaces
// anything. The next Boot tries it once; a second install before that
// replaces the first. The running firmware, which is the update agent,
// must be running, and not on trial itself.
func (d *Device) InstallUpdate(image []byte) error {
	if d.running == nil {
		return fmt.Errorf("install update: %w", ErrNotRunning)
	}
	if u := d.st.Flash.Update; u != nil && u.State == updateTrial {
		return fmt.Errorf("install update: %w", ErrUpdateInProgress)
	}
	if len(image) == 0 || len(image) > firmware.MaxImageSize {
		return fmt.Errorf("install update: %w: image of %d bytes (limit %d)", firmware.ErrMalformed, len(image), firmware.MaxImageSize)
	}
	verified, err := d.verify(image)
	if err != nil {
		return fmt.Errorf("install update: the ROM would refuse the image: %w", err)
	}
	target := otherSlot(d.activeSlot())
	*d.slot(target) = bytes.Clone(image)
	d.st.Flash.Update = &bootControl{Slot: target, State: updateInstalled}
	d.record(UpdateInstalled, target, verified.Header, "", "")
	return nil
}

// ConfirmUpdate is the running update declaring itself good: its slot
// becomes the active one, and only now does the ROM burn its security
// counter and its root-key retirements into OTP. Burning earlier would
// make the fallback image unbootable, so a failed update could not roll
// back.
func (d *Device) ConfirmUpdate() error {
	if d.running == nil {
		return fmt.Errorf("confirm update: %w", ErrNotRunning)
	}
	u := d.st.Flash.Update
	if u == nil || u.State != updateTrial || !d.running.trial {
		return fmt.Errorf("confirm update: %w", ErrNoTrial)
	}
	d.st.Flash.Active, d.st.Flash.Update = u.Slot, nil
	d.burn(d.running.header)
	d.running.trial = false
	d.record(UpdateConfirmed, u.Slot, d.running.header, "", "")
	return nil
}

// LastUpdate returns the outcome of the latest update, or nil if the
// device never had one.
func (d *Device) LastUpdate() *UpdateStatus {
	if d.st.Flash.LastUpdate == nil {
		return nil
	}
	s := *d.st.Flash.LastUpdate
	return &s
}

// Running returns the header of the running image and its slot.
func (d *Device) Running() (firmware.Header, string, error) {
	if d.running == nil {
		return firmware.Header{}, "", ErrNotRunning
	}
	return d.running.header, d.running.slot, nil
}

// tryUpdate boots the installed update on trial; false means it was rolled
// back and the caller boots the active slot.
func (d *Device) tryUpdate(u *bootControl) bool {
	verified, err := d.verify(*d.slot(u.Slot))
	switch {
	case err != nil:
		d.rollBack(u, ReasonCode(err), "the ROM refused the update: "+err.Error())
		return false
	case crashes(verified.Payload):
		d.rollBack(u, ReasonNoBoot, "the update crashed before it confirmed; the watchdog reset the chip")
		return false
	}
	u.State = updateTrial
	d.running = &runningImage{header: verified.Header, payload: verified.Payload, slot: u.Slot, trial: true}
	d.record(UpdateBooted, u.Slot, verified.Header, "", "")
	return true
}

func (d *Device) rollBack(u *bootControl, reason, detail string) {
	var h firmware.Header
	if img, err := firmware.Parse(*d.slot(u.Slot)); err == nil {
		h = img.Header()
	}
	d.st.Flash.Update = nil
	d.record(UpdateRolledBack, u.Slot, h, reason, detail)
}

func (d *Device) record(o UpdateOutcome, slot string, h firmware.Header, reason, detail string) {
	d.st.Flash.LastUpdate = &UpdateStatus{Outcome: o, Slot: slot, Version: h.Version.String(),
		SecurityCounter: h.SecurityCounter, Reason: reason, Detail: detail}
}

// ReasonCode maps an error of the ROM or the update path to the stable
// code an update agent reports: the firmware package's codes for the
// ROM's refusals, and the device's own for the rest; "internal" for an
// error that is neither.
func ReasonCode(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrNoBoot):
		return ReasonNoBoot
	case errors.Is(err, ErrNoImage):
		return "no-image"
	case errors.Is(err, ErrUpdateInProgress):
		return "update-in-progress"
	case errors.Is(err, ErrNotRunning):
		return "not-running"
	}
	if code := firmware.ReasonCode(err); code != "" {
		return code
	}
	return "internal"
}

// checkSlots checks the slots and boot control of a loaded state.
func (st *state) checkSlots() error {
	f := &st.Flash
	if f.Active != slotA && f.Active != slotB {
		return fmt.Errorf("active slot %q (want %q or %q)", f.Active, slotA, slotB)
	}
	for _, img := range [][]byte{f.SlotA, f.SlotB} {
		if len(img) > firmware.MaxImageSize {
			return fmt.Errorf("slot image of %d bytes", len(img))
		}
	}
	if u := f.Update; u != nil {
		if u.Slot != otherSlot(f.Active) || (u.State != updateInstalled && u.State != updateTrial) {
			return fmt.Errorf("update %q in slot %q while slot %q is active", u.State, u.Slot, f.Active)
		}
	}
	if s := f.LastUpdate; s != nil {
		switch s.Outcome {
		case UpdateInstalled, UpdateBooted, UpdateConfirmed, UpdateRolledBack:
		default:
			return fmt.Errorf("last update outcome %q", s.Outcome)
		}
	}
	return nil
}

// ActiveHeader parses the header of the image in the active slot, which
// anyone with a programmer can read; it verifies nothing.
func (d *Device) ActiveHeader() (firmware.Header, error) {
	data := *d.slot(d.activeSlot())
	if data == nil {
		return firmware.Header{}, ErrNoImage
	}
	img, err := firmware.Parse(data)
	if err != nil {
		return firmware.Header{}, err
	}
	return img.Header(), nil
}

// RetiredRootSlots returns the root-key slots whose OTP revocation bit is
// burned.
func (d *Device) RetiredRootSlots() firmware.SlotMask { return d.st.OTP.RetiredRoots }
