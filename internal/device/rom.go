package device

import (
	"bytes"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Injection paths, as the device and the manifest record them.
const (
	InjectionNone      = "none"      // the key was made on the chip
	InjectionEncrypted = "encrypted" // sealed to the chip's transport key
	InjectionClear     = "clear"     // over the programming interface in the clear
)

// runningImage is the firmware the ROM verified and started.
type runningImage struct {
	header  firmware.Header
	payload []byte
	slot    string
	// trial is set while the image is an update the firmware has not yet
	// confirmed.
	trial bool
}

// Program writes an image into the active slot over the programming
// interface. The programmer checks nothing: the ROM verifies at every
// boot, unless the bootloader is locked (lock.go): then it takes only an
// image the ROM verifies. Programming stops any running firmware, as a reset would, and
// cancels an update in the other slot, since a factory programmer resets
// the boot control with the flash it writes.
func (d *Device) Program(image []byte) error {
	if len(image) == 0 || len(image) > firmware.MaxImageSize {
		return fmt.Errorf("program: image of %d bytes (limit %d)", len(image), firmware.MaxImageSize)
	}
	if err := d.checkProgramming(image); err != nil {
		return err
	}
	*d.slot(d.activeSlot()) = bytes.Clone(image)
	d.st.Flash.Update = nil
	d.running = nil
	return nil
}

// Boot is the ROM. An update installed in the inactive slot is tried once:
// verified and started on trial; if the ROM refuses it, or the simulated
// firmware crashes before it can confirm (see NoBootMarker), or the
// previous trial was never confirmed, the ROM records the rollback in
// LastUpdate and boots the active slot instead. The active slot's image
// is verified against the root-key hashes, revocation bits and
// anti-rollback counter in OTP, decrypted with the device-class key when
// it is encrypted, and started; its security counter and retirements are
// burned into OTP, since the active slot holds confirmed firmware. A
// refusal wraps the firmware package's reason.
func (d *Device) Boot() error {
	d.running = nil
	if u := d.st.Flash.Update; u != nil {
		switch u.State {
		case updateTrial:
			d.rollBack(u, ReasonNotConfirmed, "the update ran on trial and was not confirmed before the next reset")
		case updateInstalled:
			if d.tryUpdate(u) {
				return nil
			}
		}
	}
	active := d.activeSlot()
	data := *d.slot(active)
	if data == nil {
		return fmt.Errorf("boot: %w", ErrNoImage)
	}
	verified, err := d.verify(data)
	if err != nil {
		return fmt.Errorf("boot: ROM refused the image: %w", err)
	}
	if crashes(verified.Payload) {
		return fmt.Errorf("boot: slot %s: %w", active, ErrNoBoot)
	}
	d.burn(verified.Header)
	d.running = &runningImage{header: verified.Header, payload: verified.Payload, slot: active}
	return nil
}

// verify makes the ROM's decision about an image under the policy in OTP.
func (d *Device) verify(data []byte) (*firmware.Verified, error) {
	img, err := firmware.Parse(data)
	if err != nil {
		return nil, err
	}
	var classKey *sealing.PrivateKey
	if img.Encrypted() {
		if classKey, err = d.classKey(); err != nil {
			return nil, err
		}
	}
	return firmware.Verify(img, d.policy(classKey))
}

func (d *Device) policy(classKey *sealing.PrivateKey) firmware.Policy {
	p := firmware.Policy{MinSecurityCounter: d.st.OTP.SecurityCounter, Retired: d.st.OTP.RetiredRoots, ClassKey: classKey}
	for _, h := range d.st.OTP.RootKeyHashes {
		p.RootKeyHashes = append(p.RootKeyHashes, [32]byte(h))
	}
	return p
}

// burn raises the OTP counter to the confirmed image's and burns the
// revocation bits it asks for. Verify has checked that a live slot
// remains.
func (d *Device) burn(h firmware.Header) {
	if h.SecurityCounter > d.st.OTP.SecurityCounter {
		d.st.OTP.SecurityCounter = h.SecurityCounter
	}
	d.st.OTP.RetiredRoots |= h.RetireSlots
}

// TransportKey is the public half of the chip's encrypted programming
// channel when it is HPKE, which the bootloader hands to the station; a
// P-256 ECDH channel has ECDHTransportKey instead (transport.go), and
// ChannelWrapper serves either.
func (d *Device) TransportKey() (*sealing.PublicKey, error) {
	key, err := d.hpkeTransport()
	if err != nil {
		return nil, err
	}
	return key.Public(), nil
}

// InjectKey programs the enrolment key of an inject-class chip: a PKCS #8
// key wrapped for the chip's channel when sealed is set (sealed to
// TransportKey with HPKE, or wrapped to ECDHTransportKey with
// sealing.WrapECDH, whichever the chip's channel is; a key in the other
// format is refused with ErrWrongTransport), or in the clear. A chip
// that offers the encrypted channel refuses a key in the clear, and every
// chip refuses a second key, a key of the wrong suite, and any key once
// its bootloader is locked.
func (d *Device) InjectKey(blob []byte, sealed bool) error {
	if d.st.Class != ClassInject {
		return fmt.Errorf("%w: a %s chip makes its own key", ErrWrongInjection, d.st.Class)
	}
	if d.st.KeyStore.EnrolmentKey != nil {
		return fmt.Errorf("inject key: %w", ErrKeyPresent)
	}
	if d.st.OTP.Locks.Bootloader {
		return fmt.Errorf("inject key: %w", ErrBootloaderLocked)
	}
	path := InjectionClear
	plain := blob
	if sealed {
		var err error
		if plain, err = d.openInjected(blob); err != nil {
			return fmt.Errorf("inject key: %w", err)
		}
		defer clear(plain)
		path = InjectionEncrypted
	} else if d.st.Loader != nil {
		return fmt.Errorf("%w: this chip takes keys only over its encrypted channel", ErrWrongInjection)
	}
	_, suite, err := sigalg.ParsePrivateKeyWithSuite(plain)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrWrongInjection, err)
	}
	if suite.ID() != d.st.Algorithm {
		return fmt.Errorf("%w: key is %s, chip is configured for %s", ErrWrongInjection, suite.ID(), d.st.Algorithm)
	}
	d.st.KeyStore.EnrolmentKey = bytes.Clone(plain)
	d.st.KeyStore.Injection = path
	return nil
}
