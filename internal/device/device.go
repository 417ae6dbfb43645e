// Package device owns the simulated microcontroller that Hallmark's factory
// and field tools talk to: its one-time-programmable fuses (OTP), its flash,
// the ROM bootloader with secure boot, and the three roots of trust:
//
//   - puf: the enrolment key is derived on demand from a 256-bit seed that a
//     fuzzy extractor reconstructs from the SRAM start-up pattern; the chip
//     stores helper data, which is public, and no secret at all.
//   - keygen: the key is generated from the chip's TRNG inside a protected
//     key store; firmware can make it sign but cannot read it.
//   - inject: the chip cannot generate keys; the station's key store
//     generates one and programs it in, sealed to a per-chip transport key
//     when the bootloader offers an encrypted programming channel, or in the
//     clear when it does not.
//
// Firmware lives in two slots (A/B): an update is checked with the ROM's
// rules, written into the inactive slot, booted once on trial and
// confirmed by the new firmware, or rolled back (update.go). Root-key slots
// in OTP can be retired by a vendor-signed image (rom.go), and the
// enrolment key can be replaced for a migration to another suite
// (migrate.go). At the end of provisioning the station burns the lock
// fuses (lock.go): debug port, key-store access window, bootloader.
//
// A device's state persists as JSON holding only what the silicon holds, so
// a device made today can boot and onboard later.
package device

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"

	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/puf"
	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Class is a device's root of trust.
type Class string

// The three roots of trust.
const (
	ClassPUF    Class = "puf"
	ClassKeygen Class = "keygen"
	ClassInject Class = "inject"
)

// Classes lists every class, in the order the documentation names them.
// ClassTPM (tpm.go) is not among them: it exists only with a TPM to hand.
var Classes = []Class{ClassPUF, ClassKeygen, ClassInject}

// ParseClass reads a class name.
func ParseClass(s string) (Class, error) {
	for _, c := range append(Classes, ClassTPM) {
		if string(c) == s {
			return c, nil
		}
	}
	return "", fmt.Errorf("%w: device class %q (want puf, keygen, inject or tpm)", ErrConfig, s)
}

// Errors callers branch on. The ROM's refusal reasons are the firmware
// package's sentinels, wrapped.
var (
	ErrConfig         = errors.New("invalid device configuration")
	ErrNoImage        = errors.New("no firmware image in flash")
	ErrNotRunning     = errors.New("firmware is not running")
	ErrNotIEF         = errors.New("running firmware is not the initial enrolment firmware")
	ErrNoKey          = errors.New("device has no enrolment key")
	ErrKeyPresent     = errors.New("device already holds an enrolment key")
	ErrNoChannel      = errors.New("chip offers no encrypted programming channel")
	ErrWrongInjection = errors.New("key injection refused")
	ErrMalformedState = errors.New("malformed device state")
)

// Config describes a chip as it leaves the silicon vendor.
type Config struct {
	Class Class
	// Algorithm is the suite of the enrolment key.
	Algorithm sigalg.ID
	// RootKeyHashes are the SHA-256 digests of the vendor root public keys
	// (DER SPKI) burned into OTP, one per root-key slot; the ROM boots only
	// images signed by every one of them that is not retired.
	RootKeyHashes [][32]byte
	// EncryptedChannel gives an inject-class chip a per-chip transport key,
	// so the station can seal the injected key to it.
	EncryptedChannel bool
	// Transport is the scheme of that channel (transport.go): empty for
	// DefaultTransport, the HPKE X-Wing channel, or TransportECDHP256 for
	// a chip whose key a PKCS #11 key store wraps inside its token.
	Transport Transport
	// ClassKey is the device-class decryption key provisioned at wafer test,
	// for encrypted firmware; nil for a chip without one.
	ClassKey *sealing.PrivateKey
	// PUF configures the simulated SRAM of a puf-class chip; the zero value
	// selects puf.DefaultConfig.
	PUF puf.Config
	// TPM is the address of a tpm-class device's TPM (tpm.ParseAddress).
	TPM string
	// Rand is the chip's TRNG and the source of its manufacturing
	// variation; nil selects crypto/rand.
	Rand io.Reader
}

func (c *Config) check() error {
	if _, err := ParseClass(string(c.Class)); err != nil {
		return err
	}
	if _, err := c.Algorithm.Suite(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if len(c.RootKeyHashes) == 0 || len(c.RootKeyHashes) > MaxRootKeys {
		return fmt.Errorf("%w: %d root key hashes, want 1 to %d", ErrConfig, len(c.RootKeyHashes), MaxRootKeys)
	}
	if c.EncryptedChannel && c.Class != ClassInject {
		return fmt.Errorf("%w: only inject-class chips take keys over a programming channel", ErrConfig)
	}
	if c.Transport != "" && !c.EncryptedChannel {
		return fmt.Errorf("%w: a programming-channel transport (%s) for a chip without the encrypted channel", ErrConfig, c.Transport)
	}
	if c.EncryptedChannel {
		if c.Transport == "" {
			c.Transport = DefaultTransport
		}
		t, err := ParseTransport(string(c.Transport))
		if err != nil {
			return err
		}
		c.Transport = t
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if c.PUF == (puf.Config{}) {
		c.PUF = puf.DefaultConfig()
	}
	return nil
}

// MaxRootKeys is the number of root-key slots in OTP.
const MaxRootKeys = firmware.MaxRootSlots
