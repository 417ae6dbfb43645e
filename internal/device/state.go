package device

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/hallmark-iot/hallmark/internal/atomicfile"
	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/puf"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// stateFormat versions the persisted state. Version 2 has two firmware
// slots, the boot control of an update, root-key revocation bits, the PUF
// derivation generation and a pending key migration; a version 1 file (one
// image) loads as slot A active and is saved as version 2.
const (
	stateFormat   = "hallmark-device/v2"
	stateFormatV1 = "hallmark-device/v1"
)

// MaxStateSize bounds a state file: the largest holds two images of
// firmware.MaxImageSize, one per slot, plus keys, all base64-encoded
// (2 × 4/3 × 16.07 MiB ≈ 43 MiB).
const MaxStateSize = 48 << 20

// state is what the silicon holds, and nothing more. Sections are named for
// the part of the chip that holds them, so a reader can check that the state
// of a puf-class chip holds no key: its OTP holds hashes, its flash holds
// public helper data and sealed blobs, and its SRAM section is the
// simulator's stand-in for manufacturing variation, not a stored value.
type state struct {
	Format    string      `json:"format"`
	ChipID    string      `json:"chip_id"`
	Class     Class       `json:"class"`
	Algorithm sigalg.ID   `json:"algorithm"`
	OTP       otpState    `json:"otp"`
	Flash     flashState  `json:"flash"`
	SRAM      *sramState  `json:"sram,omitempty"`
	KeyStore  *keyStore   `json:"protected_key_store,omitempty"`
	Loader    *loaderPart `json:"bootloader,omitempty"`
	TPM       *tpmPart    `json:"tpm,omitempty"` // tpm class: where its TPM is, its keys as the TPM wrapped them (tpm.go)
}

// otpState is the one-time-programmable fuse bank. Every field only ever
// grows: the ROM burns bits, it never clears them.
type otpState struct {
	RootKeyHashes []hexBytes `json:"root_key_hashes"`
	// RetiredRoots are the revocation bits of the root-key slots.
	RetiredRoots    firmware.SlotMask `json:"retired_root_slots,omitempty"`
	SecurityCounter uint32            `json:"security_counter"`
	// PUFGeneration is the derivation generation of a puf chip's enrolment
	// key. It is public; it sits in OTP rather than flash so that nobody
	// with a programmer can wind it back and bring a retired key back.
	PUFGeneration uint32 `json:"puf_generation,omitempty"`
	// Locks are the lock fuses the station burns at the end of
	// provisioning (lock.go); a state without them is an open chip.
	Locks LockState `json:"locks,omitzero"`
}

// flashState is non-volatile memory that anyone with a programmer can read.
type flashState struct {
	// Image is the one image of a version 1 state; Unmarshal moves it to
	// slot A.
	Image []byte `json:"image,omitempty"`
	// SlotA and SlotB are the two firmware slots; Active names the one the
	// ROM boots ("a" or "b").
	SlotA  []byte `json:"slot_a,omitempty"`
	SlotB  []byte `json:"slot_b,omitempty"`
	Active string `json:"active_slot,omitempty"`
	// Update is the boot control of an update in the inactive slot.
	Update *bootControl `json:"update,omitempty"`
	// LastUpdate is the outcome of the latest update, for the agent to
	// report.
	LastUpdate *UpdateStatus `json:"last_update,omitempty"`
	// Migration is a pending re-keying; the pending key itself is in the
	// protected key store, or for a puf chip derived, never stored.
	Migration *pendingMigration `json:"pending_migration,omitempty"`
	// PUFHelper is the fuzzy extractor's public helper data.
	PUFHelper []byte `json:"puf_helper,omitempty"`
	// ClassKeyVault is the device-class key sealed under a key derived from
	// the PUF, so only this chip's SRAM can open it.
	ClassKeyVault []byte `json:"class_key_vault,omitempty"`
	// Credentials are what onboarding returned: certificates, the trust
	// bundle and the cloud endpoint.
	Credentials *Credentials `json:"credentials,omitempty"`
}

// sramState stands in for the physics of the SRAM array: the seed from which
// the simulator draws each cell's preferred start-up value. A real chip
// holds no such value anywhere; the simulator needs it so that the same
// chip exists tomorrow.
type sramState struct {
	CellSeed     hexBytes `json:"cell_variation_seed"`
	BitErrorRate float64  `json:"bit_error_rate"`
	Bias         float64  `json:"bias"`
	Cells        int      `json:"cells"`
}

// keyStore is the protected on-chip key store of keygen and inject chips:
// firmware can ask it to sign, and nothing can read it out.
type keyStore struct {
	EnrolmentKey   []byte `json:"enrolment_key,omitempty"`         // PKCS #8
	PendingKey     []byte `json:"pending_enrolment_key,omitempty"` // PKCS #8, during a migration
	OperationalKey []byte `json:"operational_key,omitempty"`       // PKCS #8
	Injection      string `json:"injection,omitempty"`             // how an injected key arrived
	ClassKey       []byte `json:"class_key,omitempty"`             // sealing private key
}

// loaderPart is the ROM bootloader's private storage: the per-chip
// transport key of the encrypted programming channel, exactly one of an
// HPKE key (sealing.MarshalPrivateKey) or a P-256 ECDH key (its 32-byte
// scalar) (transport.go).
type loaderPart struct {
	TransportKey     []byte `json:"transport_key,omitempty"`
	ECDHTransportKey []byte `json:"ecdh_transport_key,omitempty"`
}

// hexBytes marshals as lowercase hex, which reads better than base64 for
// hashes and seeds.
type hexBytes []byte

func (h hexBytes) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }

func (h *hexBytes) UnmarshalText(text []byte) error {
	b, err := hex.DecodeString(string(text))
	if err != nil {
		return fmt.Errorf("not hex: %w", err)
	}
	*h = b
	return nil
}

// Save writes the device state to path atomically, with mode 0600.
func (d *Device) Save(path string) error {
	data, err := json.MarshalIndent(d.st, "", "  ")
	if err != nil {
		return fmt.Errorf("save device: %w", err)
	}
	if err := atomicfile.Write(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("save device: %w", err)
	}
	return nil
}

// Load reads a device saved by Save. rng is its TRNG (nil: crypto/rand).
func Load(path string, rng io.Reader) (*Device, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load device: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxStateSize+1))
	if err != nil {
		return nil, fmt.Errorf("load device %s: %w", path, err)
	}
	d, err := Unmarshal(data, rng)
	if err != nil {
		return nil, fmt.Errorf("load device %s: %w", path, err)
	}
	return d, nil
}

// Unmarshal reads a device state, strictly: unknown fields and sections
// that do not belong to the chip's class are refused.
func Unmarshal(data []byte, rng io.Reader) (*Device, error) {
	if len(data) > MaxStateSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrMalformedState, MaxStateSize)
	}
	var st state
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedState, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data", ErrMalformedState)
	}
	if rng == nil {
		rng = rand.Reader
	}
	d := &Device{st: st, rand: rng}
	if err := d.checkState(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedState, err)
	}
	return d, nil
}

func (d *Device) checkState() error {
	st := &d.st
	switch st.Format {
	case stateFormatV1:
		if err := st.upgradeV1(); err != nil {
			return err
		}
	case stateFormat:
		if st.Flash.Image != nil {
			return fmt.Errorf("a %s state keeps its images in slots", stateFormat)
		}
	default:
		return fmt.Errorf("format %q, want %q or %q", st.Format, stateFormat, stateFormatV1)
	}
	if _, err := ParseClass(string(st.Class)); err != nil {
		return err
	}
	if _, err := st.Algorithm.Suite(); err != nil {
		return err
	}
	if n := len(st.OTP.RootKeyHashes); n == 0 || n > MaxRootKeys {
		return fmt.Errorf("%d root key hashes", n)
	}
	for _, h := range st.OTP.RootKeyHashes {
		if len(h) != 32 {
			return fmt.Errorf("root key hash of %d bytes", len(h))
		}
	}
	if err := st.checkRetired(); err != nil {
		return err
	}
	isPUF := st.Class == ClassPUF
	if isPUF != (st.SRAM != nil) || isPUF == (st.KeyStore != nil) {
		return fmt.Errorf("sections do not match class %s", st.Class)
	}
	if err := st.checkTPMState(); err != nil {
		return err
	}
	if st.Loader != nil && st.Class != ClassInject {
		return fmt.Errorf("a %s chip has no programming-channel key", st.Class)
	}
	if isPUF {
		if len(st.SRAM.CellSeed) != 32 {
			return fmt.Errorf("SRAM variation seed of %d bytes", len(st.SRAM.CellSeed))
		}
		if _, err := d.sramConfig(); err != nil {
			return err
		}
		if _, err := puf.ParseHelperData(st.Flash.PUFHelper); err != nil {
			return err
		}
	}
	if st.Loader != nil {
		if err := st.Loader.check(); err != nil {
			return err
		}
	}
	if err := st.checkSlots(); err != nil {
		return err
	}
	return st.checkMigration()
}

// upgradeV1 reads a version 1 state: its one image becomes slot A, the
// active slot, and nothing of version 2 may be present yet.
func (st *state) upgradeV1() error {
	f := &st.Flash
	if f.SlotA != nil || f.SlotB != nil || f.Active != "" || f.Update != nil || f.LastUpdate != nil ||
		f.Migration != nil || st.OTP.RetiredRoots != 0 || st.OTP.PUFGeneration != 0 || st.OTP.Locks != (LockState{}) ||
		(st.KeyStore != nil && st.KeyStore.PendingKey != nil) {
		return fmt.Errorf("a %s state with fields of %s", stateFormatV1, stateFormat)
	}
	f.SlotA, f.Image, f.Active = f.Image, nil, slotA
	st.Format = stateFormat
	return nil
}

func (st *state) checkRetired() error {
	n := len(st.OTP.RootKeyHashes)
	if st.OTP.RetiredRoots>>n != 0 {
		return fmt.Errorf("revocation bits %s beyond the %d root-key slots", st.OTP.RetiredRoots, n)
	}
	if st.OTP.RetiredRoots == firmware.SlotMask(1<<n-1) {
		return fmt.Errorf("every root-key slot is retired")
	}
	return nil
}
