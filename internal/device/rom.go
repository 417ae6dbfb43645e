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
	imageType firmware.ImageType
	payload   []byte
}

// Program writes an image into flash over the programming interface. The
// programmer checks nothing: the ROM verifies at every boot. Programming
// stops any running firmware, as a reset would.
func (d *Device) Program(image []byte) error {
	if len(image) == 0 || len(image) > firmware.MaxImageSize {
		return fmt.Errorf("program: image of %d bytes (limit %d)", len(image), firmware.MaxImageSize)
	}
	d.st.Flash.Image = bytes.Clone(image)
	d.running = nil
	return nil
}

// Boot is the ROM: it verifies the image in flash against the root-key
// hashes and the anti-rollback counter in OTP, decrypts it with the
// device-class key when it is encrypted, and starts it. Booting an image
// with a higher security counter burns the counter up to it, so older
// images never run again. A refusal wraps the firmware package's reason.
func (d *Device) Boot() error {
	d.running = nil
	if d.st.Flash.Image == nil {
		return fmt.Errorf("boot: %w", ErrNoImage)
	}
	img, err := firmware.Parse(d.st.Flash.Image)
	if err != nil {
		return fmt.Errorf("boot: ROM refused the image: %w", err)
	}
	var classKey *sealing.PrivateKey
	if img.Encrypted() {
		if classKey, err = d.classKey(); err != nil {
			return fmt.Errorf("boot: %w", err)
		}
	}
	policy := firmware.Policy{MinSecurityCounter: d.st.OTP.SecurityCounter, ClassKey: classKey}
	for _, h := range d.st.OTP.RootKeyHashes {
		policy.RootKeyHashes = append(policy.RootKeyHashes, [32]byte(h))
	}
	verified, err := firmware.Verify(img, policy)
	if err != nil {
		return fmt.Errorf("boot: ROM refused the image: %w", err)
	}
	if c := verified.Header.SecurityCounter; c > d.st.OTP.SecurityCounter {
		d.st.OTP.SecurityCounter = c
	}
	d.running = &runningImage{imageType: verified.Header.Type, payload: verified.Payload}
	return nil
}

// TransportKey is the public half of the chip's encrypted programming
// channel, which the bootloader hands to the station.
func (d *Device) TransportKey() (*sealing.PublicKey, error) {
	if d.st.Loader == nil {
		return nil, ErrNoChannel
	}
	key, err := sealing.ParsePrivateKey(d.st.Loader.TransportKey)
	if err != nil {
		return nil, fmt.Errorf("%w: transport key: %v", ErrMalformedState, err)
	}
	return key.Public(), nil
}

// InjectKey programs the enrolment key of an inject-class chip: a PKCS #8
// key sealed to TransportKey when sealed is set, or in the clear. A chip
// that offers the encrypted channel refuses a key in the clear, and every
// chip refuses a second key or a key of the wrong suite.
func (d *Device) InjectKey(blob []byte, sealed bool) error {
	if d.st.Class != ClassInject {
		return fmt.Errorf("%w: a %s chip makes its own key", ErrWrongInjection, d.st.Class)
	}
	if d.st.KeyStore.EnrolmentKey != nil {
		return fmt.Errorf("inject key: %w", ErrKeyPresent)
	}
	path := InjectionClear
	plain := blob
	if sealed {
		if d.st.Loader == nil {
			return fmt.Errorf("inject key: %w", ErrNoChannel)
		}
		transport, err := sealing.ParsePrivateKey(d.st.Loader.TransportKey)
		if err != nil {
			return fmt.Errorf("%w: transport key: %v", ErrMalformedState, err)
		}
		if plain, err = transport.Unwrap(blob); err != nil {
			return fmt.Errorf("%w: cannot open the sealed key: %v", ErrWrongInjection, err)
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
