package ota

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/firmware"
)

// install hands the verified image to the ROM's rules and the inactive
// slot. A refusal is the update's outcome, with the ROM's reason code.
func (a *Agent) install(j *journal) error {
	img, err := readPartial(PartialPath(a.StatePath), j.Image.Size)
	if err != nil {
		return err
	}
	if a.installed(j, img) {
		// Killed after the device state was saved with the install, and
		// since booted: the reboot step reads what the boot did.
		j.Step = stepReboot
		return j.save(JournalPath(a.StatePath))
	}
	if err := a.Device.InstallUpdate(img); err != nil {
		return a.fail(j, device.ReasonCode(err), err.Error())
	}
	if err := a.saveDevice(); err != nil {
		return err
	}
	st := a.Device.LastUpdate()
	a.printf("installed: %s (security counter %d) in slot %s", st.Version, st.SecurityCounter, st.Slot)
	j.Step = stepReboot
	if err := j.save(JournalPath(a.StatePath)); err != nil {
		return err
	}
	// The slot holds the image now; the partial copy is no longer needed.
	if err := os.Remove(PartialPath(a.StatePath)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("install: %w", err)
	}
	return nil
}

// installed reports whether the device's state already holds this install:
// its last update changed since the journal recorded it, and names this
// image's version and counter.
func (a *Agent) installed(j *journal, img []byte) bool {
	st := a.Device.LastUpdate()
	if st == nil || reflect.DeepEqual(st, j.Before) {
		return false
	}
	parsed, err := firmware.Parse(img)
	if err != nil {
		return false
	}
	h := parsed.Header()
	return st.Version == h.Version.String() && st.SecurityCounter == h.SecurityCounter
}

// reboot reports the install, resets the chip through secure boot and
// lets the new firmware confirm itself; or reads the rollback the ROM
// made when it would not boot.
func (a *Agent) reboot(ctx context.Context, j *journal) error {
	if err := a.report(ctx, j, Report{State: StateInstalled}); err != nil {
		return err
	}
	st := a.Device.LastUpdate()
	if st != nil && st.Outcome == device.UpdateInstalled {
		a.printf("rebooting into slot %s", st.Slot)
		if err := a.Device.Boot(); err != nil {
			// Not even the previous slot boots: nothing runs to report.
			return fmt.Errorf("reboot: %w", err)
		}
		st = a.Device.LastUpdate()
	}
	if st == nil {
		return fmt.Errorf("reboot: the device records no update")
	}
	switch st.Outcome {
	case device.UpdateBooted:
		// This is the new firmware running: it confirms itself, which
		// makes its slot active and burns its counter.
		if err := a.Device.ConfirmUpdate(); err != nil {
			return fmt.Errorf("reboot: %w", err)
		}
		if err := a.saveDevice(); err != nil {
			return err
		}
		fallthrough
	case device.UpdateConfirmed:
		a.printf("booted: %s confirmed in slot %s; anti-rollback counter %d", st.Version, st.Slot, a.Device.SecurityCounter())
		return a.conclude(j, StateBooted, "", "")
	case device.UpdateRolledBack:
		if err := a.saveDevice(); err != nil {
			return err
		}
		return a.conclude(j, StateRolledBack, st.Reason, st.Detail)
	}
	return fmt.Errorf("reboot: unexpected update outcome %q", st.Outcome)
}

// readPartial reads the complete image, which verify checked.
func readPartial(path string, size int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("install: the downloaded image: %w", err)
	}
	defer f.Close()
	img, err := io.ReadAll(io.LimitReader(f, size+1))
	if err != nil {
		return nil, fmt.Errorf("install: the downloaded image: %w", err)
	}
	if int64(len(img)) != size {
		return nil, fmt.Errorf("install: the downloaded image has %d bytes, not %d", len(img), size)
	}
	return img, nil
}
