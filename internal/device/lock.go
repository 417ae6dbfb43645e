package device

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/hallmark-iot/hallmark/internal/firmware"
)

// Locking the chip at the end of provisioning (docs/manufacturing.md,
// "Locking the device"). A factory-fresh chip is open: a debug probe on its
// JTAG/SWD pins reads any memory, any code may read the key store's flash,
// and the bootloader writes whatever a programmer sends. The station closes
// three locks once the device is enrolled, as real secure MCUs are closed:
//
//   - debug: the debug port is disabled for good (STM32 RDP level 2, nRF
//     APPROTECT, ESP32's JTAG-disable eFuse); every debug read is refused.
//   - key-store window: the key store's region sits behind a flash access
//     window (an MPU region or a secure-flash area) that only the ROM and
//     the initial enrolment firmware may read; application firmware, and a
//     debugger's bus accesses, are refused.
//   - bootloader: the ROM bootloader takes only images the ROM verifies
//     (signed by the roots in OTP, not rolled back) and no longer takes
//     keys.
//
// Each lock is a fuse: it is burned, never cleared, and so survives reset
// and power loss; the state file keeps it in OTP.

// Lock names one of the locks.
type Lock string

// The locks, in the order the manifest and the documentation name them.
const (
	LockDebug      Lock = "debug"
	LockKeyWindow  Lock = "key-store-window"
	LockBootloader Lock = "bootloader"
)

// AllLocks lists every lock.
var AllLocks = []Lock{LockDebug, LockKeyWindow, LockBootloader}

// Errors of a locked chip.
var (
	// ErrDebugLocked refuses a debug-port access after the debug lock.
	ErrDebugLocked = errors.New("debug port is locked")
	// ErrAccessWindow refuses a read of the key-store region by code that
	// is neither the ROM nor the initial enrolment firmware.
	ErrAccessWindow = errors.New("key-store region is outside the flash access window")
	// ErrBootloaderLocked refuses programming a locked bootloader does not
	// allow: an image the ROM does not verify, or a key.
	ErrBootloaderLocked = errors.New("bootloader is locked")
)

// LockState is which locks are burned.
type LockState struct {
	Debug      bool `json:"debug,omitempty"`
	KeyWindow  bool `json:"flash_access_window,omitempty"`
	Bootloader bool `json:"bootloader,omitempty"`
}

// Has reports whether lock l is burned.
func (s LockState) Has(l Lock) bool {
	switch l {
	case LockDebug:
		return s.Debug
	case LockKeyWindow:
		return s.KeyWindow
	case LockBootloader:
		return s.Bootloader
	}
	return false
}

// Closed reports whether every lock is burned.
func (s LockState) Closed() bool { return s.Debug && s.KeyWindow && s.Bootloader }

// Locks lists the burned locks in AllLocks order.
func (s LockState) Locks() []Lock {
	var out []Lock
	for _, l := range AllLocks {
		if s.Has(l) {
			out = append(out, l)
		}
	}
	return out
}

// String is "open" or the burned locks joined by commas.
func (s LockState) String() string {
	locks := s.Locks()
	if len(locks) == 0 {
		return "open"
	}
	names := make([]string, len(locks))
	for i, l := range locks {
		names[i] = string(l)
	}
	return strings.Join(names, ",")
}

// ParseLock reads a lock name.
func ParseLock(s string) (Lock, error) {
	for _, l := range AllLocks {
		if string(l) == s {
			return l, nil
		}
	}
	return "", fmt.Errorf("%w: lock %q (want debug, key-store-window or bootloader)", ErrConfig, s)
}

// Lock burns the given locks; with none it burns every lock. Locks are
// one-way: burning a burned lock changes nothing, and nothing unburns one.
func (d *Device) Lock(locks ...Lock) error {
	if len(locks) == 0 {
		locks = AllLocks
	}
	next := d.st.OTP.Locks
	for _, l := range locks {
		switch l {
		case LockDebug:
			next.Debug = true
		case LockKeyWindow:
			next.KeyWindow = true
		case LockBootloader:
			next.Bootloader = true
		default:
			return fmt.Errorf("lock: %w: unknown lock %q", ErrConfig, l)
		}
	}
	d.st.OTP.Locks = next
	return nil
}

// LockState returns the burned locks.
func (d *Device) LockState() LockState { return d.st.OTP.Locks }

// Region is a part of the chip's memory a read can name.
type Region string

// The regions. The key store is the protected key store of keygen and
// inject chips (with the bootloader's transport key) and, on a puf chip,
// the SRAM array whose start-up pattern is the PUF response: either gives
// an attacker the device key.
const (
	RegionOTP      Region = "otp"
	RegionFlash    Region = "flash"
	RegionKeyStore Region = "key-store"
)

// Regions lists every region.
var Regions = []Region{RegionOTP, RegionFlash, RegionKeyStore}

// ParseRegion reads a region name.
func ParseRegion(s string) (Region, error) {
	for _, r := range Regions {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("%w: region %q (want otp, flash or key-store)", ErrConfig, s)
}

// DebugRead reads a region through the debug port, as an attacker with a
// probe on the JTAG/SWD pins would. An open chip gives out everything,
// keys included. The debug lock refuses every read; the key-store window
// refuses the key-store region, since the debugger is not ROM code.
func (d *Device) DebugRead(r Region) ([]byte, error) {
	if d.st.OTP.Locks.Debug {
		return nil, fmt.Errorf("debug read of %s: %w", r, ErrDebugLocked)
	}
	if r == RegionKeyStore && d.st.OTP.Locks.KeyWindow {
		return nil, fmt.Errorf("debug read of %s: %w", r, ErrAccessWindow)
	}
	return d.dumpRegion(r)
}

// FirmwareRead reads a region from the running firmware, as application
// code (or an attacker who took it over) would with a plain memory load.
// Behind the key-store window only the ROM and the initial enrolment
// firmware reach the key-store region; the application must ask the key
// store to sign instead.
func (d *Device) FirmwareRead(r Region) ([]byte, error) {
	if d.running == nil {
		return nil, fmt.Errorf("firmware read of %s: %w", r, ErrNotRunning)
	}
	if r == RegionKeyStore && d.st.OTP.Locks.KeyWindow && !d.runningIEF() {
		return nil, fmt.Errorf("firmware read of %s by %s firmware: %w", r, d.running.header.Type, ErrAccessWindow)
	}
	return d.dumpRegion(r)
}

// dumpRegion returns a region's contents as JSON, the simulator's stand-in
// for a memory dump.
func (d *Device) dumpRegion(r Region) ([]byte, error) {
	var v any
	switch r {
	case RegionOTP:
		v = d.st.OTP
	case RegionFlash:
		v = d.st.Flash
	case RegionKeyStore:
		if d.st.Class == ClassPUF {
			chip, err := d.sram()
			if err != nil {
				return nil, err
			}
			v = struct {
				SRAM []byte `json:"sram_power_up"`
			}{chip.Read()}
		} else {
			v = struct {
				KeyStore *keyStore   `json:"protected_key_store"`
				Loader   *loaderPart `json:"bootloader,omitempty"`
			}{d.st.KeyStore, d.st.Loader}
		}
	default:
		return nil, fmt.Errorf("%w: region %q", ErrConfig, r)
	}
	return json.Marshal(v)
}

// checkProgramming is the locked bootloader's rule for an image: it must
// be one the ROM would boot now.
func (d *Device) checkProgramming(image []byte) error {
	if !d.st.OTP.Locks.Bootloader {
		return nil
	}
	if _, err := d.verify(image); err != nil {
		return fmt.Errorf("program: %w: the ROM refused the image: %w", ErrBootloaderLocked, err)
	}
	return nil
}

// runningIEF reports whether the running firmware is the initial enrolment
// firmware, which the key-store window lets through.
func (d *Device) runningIEF() bool {
	return d.running != nil && d.running.header.Type == firmware.TypeIEF && bytes.Equal(d.running.payload, iefProgram)
}
