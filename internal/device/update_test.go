package device

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// appImage builds an application image of version 1.0.counter.
func appImage(t testing.TB, counter uint32, retire firmware.SlotMask, payload string, class *sealing.PublicKey, signers ...crypto.Signer) []byte {
	t.Helper()
	img, err := firmware.New(firmware.Metadata{Type: firmware.TypeApplication, Version: firmware.Version{Major: 1, Patch: uint16(counter)},
		SecurityCounter: counter, RetireSlots: retire}, []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	if class != nil {
		if err := img.Encrypt(class); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range signers {
		if err := img.Sign(s); err != nil {
			t.Fatal(err)
		}
	}
	data, err := img.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// running boots d from an application of counter 1 in slot A.
func running(t testing.TB, cfg Config, signers ...crypto.Signer) *Device {
	t.Helper()
	d := newDevice(t, cfg)
	if err := d.Program(appImage(t, 1, 0, "app 1", nil, signers...)); err != nil {
		t.Fatal(err)
	}
	if err := d.Boot(); err != nil {
		t.Fatal(err)
	}
	return d
}

// reload saves d and loads it back, as a power cycle does.
func reload(t testing.TB, d *Device) *Device {
	t.Helper()
	path := filepath.Join(t.TempDir(), "d.json")
	if err := d.Save(path); err != nil {
		t.Fatal(err)
	}
	again, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return again
}

func checkRunning(t *testing.T, d *Device, slot string, patch uint16) {
	t.Helper()
	h, s, err := d.Running()
	if err != nil || s != slot || h.Version.Patch != patch {
		t.Fatalf("running %s from slot %q (%v), want 1.0.%d from slot %q", h.Version, s, err, patch, slot)
	}
}

func checkOutcome(t *testing.T, d *Device, outcome UpdateOutcome, reason string) {
	t.Helper()
	s := d.LastUpdate()
	if s == nil || s.Outcome != outcome || s.Reason != reason {
		t.Fatalf("last update %+v, want %s (%q)", s, outcome, reason)
	}
}

func TestUpdateConfirmed(t *testing.T) {
	v := newVendor(t, sigalg.Ed25519)
	for _, class := range []Class{ClassPUF, ClassKeygen} {
		t.Run(string(class), func(t *testing.T) {
			d := running(t, Config{Class: class, Algorithm: sigalg.Ed25519, RootKeyHashes: [][32]byte{v.hash}}, v.key)
			if err := d.InstallUpdate(appImage(t, 2, 0, "app 2", nil, v.key)); err != nil {
				t.Fatal(err)
			}
			checkOutcome(t, d, UpdateInstalled, "")
			checkRunning(t, d, slotA, 1)
			d = reload(t, d)
			if err := d.Boot(); err != nil {
				t.Fatal(err)
			}
			checkRunning(t, d, slotB, 2)
			checkOutcome(t, d, UpdateBooted, "")
			if d.SecurityCounter() != 1 {
				t.Fatalf("counter %d burned on a trial boot", d.SecurityCounter())
			}
			if err := d.InstallUpdate(appImage(t, 3, 0, "app 3", nil, v.key)); !errors.Is(err, ErrUpdateInProgress) {
				t.Fatalf("install during a trial = %v", err)
			}
			d = reload(t, d) // the trial survives nothing: a reset before confirming is a rollback
			if err := d.Boot(); err != nil {
				t.Fatal(err)
			}
			checkRunning(t, d, slotA, 1)
			checkOutcome(t, d, UpdateRolledBack, ReasonNotConfirmed)

			if err := d.InstallUpdate(appImage(t, 2, 0, "app 2", nil, v.key)); err != nil {
				t.Fatal(err)
			}
			if err := d.Boot(); err != nil {
				t.Fatal(err)
			}
			if err := d.ConfirmUpdate(); err != nil {
				t.Fatal(err)
			}
			checkOutcome(t, d, UpdateConfirmed, "")
			if d.SecurityCounter() != 2 {
				t.Fatalf("counter %d after confirming counter 2", d.SecurityCounter())
			}
			if err := d.ConfirmUpdate(); !errors.Is(err, ErrNoTrial) {
				t.Fatalf("second confirm = %v", err)
			}
			d = reload(t, d)
			if err := d.Boot(); err != nil {
				t.Fatal(err)
			}
			checkRunning(t, d, slotB, 2)
			if err := d.ConfirmUpdate(); !errors.Is(err, ErrNoTrial) {
				t.Fatalf("confirm of confirmed firmware = %v", err)
			}
			// The old image is still in slot A, and now refused as a rollback.
			if err := d.InstallUpdate(appImage(t, 1, 0, "app 1", nil, v.key)); !errors.Is(err, firmware.ErrRollback) {
				t.Fatalf("install of counter 1 after confirming 2 = %v", err)
			}
		})
	}
}

func TestUpdateThatDoesNotBootRollsBack(t *testing.T) {
	v := newVendor(t, sigalg.Ed25519)
	class, _ := sealing.GenerateKey(sealing.X25519)
	d := running(t, Config{Class: ClassKeygen, Algorithm: sigalg.Ed25519, RootKeyHashes: [][32]byte{v.hash}, ClassKey: class}, v.key)
	crash := appImage(t, 5, 0, NoBootMarker+"the rest of a broken build", class.Public(), v.key)
	if err := d.InstallUpdate(crash); err != nil {
		t.Fatal(err)
	}
	if err := d.Boot(); err != nil {
		t.Fatalf("Boot after a crashing update = %v; the ROM should fall back", err)
	}
	checkRunning(t, d, slotA, 1)
	checkOutcome(t, d, UpdateRolledBack, ReasonNoBoot)
	if d.SecurityCounter() != 1 || d.LastUpdate().SecurityCounter != 5 {
		t.Fatalf("counter %d after a rolled-back counter-5 update (%+v)", d.SecurityCounter(), d.LastUpdate())
	}
	if err := d.ConfirmUpdate(); !errors.Is(err, ErrNoTrial) {
		t.Fatalf("confirm after the rollback = %v", err)
	}
	// Programmed straight into the active slot, it has nothing to fall back to.
	d.Program(crash)
	if err := d.Boot(); !errors.Is(err, ErrNoBoot) || ReasonCode(err) != ReasonNoBoot {
		t.Fatalf("Boot of a crashing active image = %v", err)
	}
}

// TestUpdateRefusedAtBootRollsBack: an update the ROM refuses at boot
// (here, changed in flash after the install) is rolled back with the
// ROM's reason.
func TestUpdateRefusedAtBootRollsBack(t *testing.T) {
	v := newVendor(t, sigalg.Ed25519)
	for _, tc := range []struct {
		name   string
		offset int
		reason string
	}{{"header", 15, "signature"}, {"payload", 60, "malformed"}} {
		t.Run(tc.name, func(t *testing.T) {
			d := running(t, Config{Class: ClassKeygen, Algorithm: sigalg.Ed25519, RootKeyHashes: [][32]byte{v.hash}}, v.key)
			if err := d.InstallUpdate(appImage(t, 2, 0, "app 2 with a payload long enough", nil, v.key)); err != nil {
				t.Fatal(err)
			}
			d.st.Flash.SlotB[tc.offset] ^= 1
			if err := d.Boot(); err != nil {
				t.Fatal(err)
			}
			checkRunning(t, d, slotA, 1)
			checkOutcome(t, d, UpdateRolledBack, tc.reason)
			if !strings.Contains(d.LastUpdate().Detail, "ROM refused") {
				t.Fatalf("detail %q", d.LastUpdate().Detail)
			}
		})
	}
}

// TestInstallRefusals: every refusal is its own reason, and changes
// nothing on the device.
func TestInstallRefusals(t *testing.T) {
	ec, pq, other := newVendor(t, sigalg.ECDSAP256), newVendor(t, sigalg.MLDSA65), newVendor(t, sigalg.Ed25519)
	class, _ := sealing.GenerateKey(sealing.X25519)
	otherClass, _ := sealing.GenerateKey(sealing.X25519)
	good := appImage(t, 3, 0, "app 3", nil, ec.key, pq.key)
	cases := []struct {
		name   string
		image  []byte
		want   error
		reason string
	}{
		{"empty", nil, firmware.ErrMalformed, "malformed"},
		{"tampered", append(bytes.Clone(good[:len(good)-1]), good[len(good)-1]^1), firmware.ErrBadSignature, "signature"},
		{"truncated", good[:100], firmware.ErrMalformed, "malformed"},
		{"unsigned", appImage(t, 3, 0, "app 3", nil), firmware.ErrUnsigned, "unsigned"},
		{"stranger", appImage(t, 3, 0, "app 3", nil, other.key), firmware.ErrUntrustedKey, "unknown-root"},
		{"one of two roots", appImage(t, 3, 0, "app 3", nil, ec.key), firmware.ErrUntrustedKey, "unknown-root"},
		{"rollback", appImage(t, 1, 0, "app 0", nil, ec.key, pq.key), firmware.ErrRollback, "rollback"},
		{"another class", appImage(t, 3, 0, "app 3", otherClass.Public(), ec.key, pq.key), firmware.ErrDecrypt, "decrypt"},
		{"retire both roots", appImage(t, 3, 3, "app 3", nil, ec.key, pq.key), firmware.ErrRetireLastRoot, "retire-last-root"},
		{"retire slot 2 of 2", appImage(t, 3, 4, "app 3", nil, ec.key, pq.key), firmware.ErrRetireUnknownSlot, "retire-unknown-slot"},
	}
	d := newDevice(t, Config{Class: ClassKeygen, Algorithm: sigalg.Ed25519, RootKeyHashes: [][32]byte{ec.hash, pq.hash}, ClassKey: class})
	if err := d.Program(appImage(t, 2, 0, "app 2", nil, ec.key, pq.key)); err != nil {
		t.Fatal(err)
	}
	if err := d.InstallUpdate(good); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("install before boot = %v", err)
	}
	if err := d.Boot(); err != nil {
		t.Fatal(err)
	}
	before, _ := json.Marshal(d.st)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := d.InstallUpdate(tc.image)
			if !errors.Is(err, tc.want) || ReasonCode(err) != tc.reason {
				t.Fatalf("InstallUpdate = %v (reason %q), want %v (%q)", err, ReasonCode(err), tc.want, tc.reason)
			}
			if after, _ := json.Marshal(d.st); !bytes.Equal(after, before) {
				t.Fatal("a refused install changed the device")
			}
		})
	}
	noClass := running(t, Config{Class: ClassPUF, Algorithm: sigalg.Ed25519, RootKeyHashes: [][32]byte{ec.hash}}, ec.key)
	err := noClass.InstallUpdate(appImage(t, 3, 0, "app 3", class.Public(), ec.key))
	if !errors.Is(err, firmware.ErrEncryptedNoKey) || ReasonCode(err) != "no-class-key" {
		t.Fatalf("encrypted image on a chip without a class key = %v", err)
	}
}

func TestReasonCodes(t *testing.T) {
	for err, want := range map[error]string{
		ErrNoBoot: "no-boot", ErrNoImage: "no-image", ErrUpdateInProgress: "update-in-progress",
		ErrNotRunning: "not-running", firmware.ErrRetiredRoot: "retired-root", sigalg.ErrWeakKey: "weak-key",
		errors.New("disk on fire"): "internal",
	} {
		if got := ReasonCode(errors.Join(errors.New("context"), err)); got != want {
			t.Errorf("ReasonCode(%v) = %q, want %q", err, got, want)
		}
	}
	if ReasonCode(nil) != "" {
		t.Error("ReasonCode(nil) is not empty")
	}
}

// TestRootRetirement walks a hybrid device through the retirement of its
// classical root.
func TestRootRetirement(t *testing.T) {
	ec, pq := newVendor(t, sigalg.ECDSAP256), newVendor(t, sigalg.MLDSA65)
	d := running(t, Config{Class: ClassKeygen, Algorithm: sigalg.Ed25519, RootKeyHashes: [][32]byte{ec.hash, pq.hash}}, ec.key, pq.key)
	classicalOnly := appImage(t, 2, 0, "app 2", nil, ec.key)
	if err := d.InstallUpdate(classicalOnly); !errors.Is(err, firmware.ErrUntrustedKey) {
		t.Fatalf("classical-only image before retirement = %v", err)
	}
	retire := appImage(t, 2, 1, "app 2 retires the classical root", nil, ec.key, pq.key)
	// A retirement on trial and never confirmed burns nothing.
	if err := d.InstallUpdate(retire); err != nil {
		t.Fatal(err)
	}
	d.Boot()
	d.Boot()
	checkOutcome(t, d, UpdateRolledBack, ReasonNotConfirmed)
	if d.RetiredRootSlots() != 0 {
		t.Fatalf("retired %s without a confirmation", d.RetiredRootSlots())
	}
	if err := d.InstallUpdate(retire); err != nil {
		t.Fatal(err)
	}
	if err := d.Boot(); err != nil {
		t.Fatal(err)
	}
	if d.RetiredRootSlots() != 0 {
		t.Fatal("retired on the trial boot")
	}
	if err := d.ConfirmUpdate(); err != nil {
		t.Fatal(err)
	}
	d = reload(t, d)
	if d.RetiredRootSlots() != 1 {
		t.Fatalf("retired slots %s after confirming and a power cycle, want 0", d.RetiredRootSlots())
	}
	if err := d.Boot(); err != nil {
		t.Fatal(err)
	}
	err := d.InstallUpdate(appImage(t, 3, 0, "app 3", nil, ec.key))
	if !errors.Is(err, firmware.ErrRetiredRoot) || ReasonCode(err) != "retired-root" {
		t.Fatalf("image signed only under the retired root = %v", err)
	}
	if err := d.InstallUpdate(appImage(t, 3, 2, "app 3", nil, pq.key)); !errors.Is(err, firmware.ErrRetireLastRoot) {
		t.Fatalf("image retiring the last live root = %v", err)
	}
	for _, signers := range [][]crypto.Signer{{pq.key}, {ec.key, pq.key}} {
		if err := d.InstallUpdate(appImage(t, 3, 0, "app 3", nil, signers...)); err != nil {
			t.Fatalf("image signed by %d keys incl. the live root: %v", len(signers), err)
		}
	}
	// Even a programmer cannot bring the retired root back: the ROM
	// refuses its image in the active slot too.
	d.Program(classicalOnly)
	if err := d.Boot(); !errors.Is(err, firmware.ErrRetiredRoot) {
		t.Fatalf("Boot of a programmed classical-only image = %v", err)
	}
}

// TestV1StateLoadsAsSlotA loads states written by the single-image release
// (testdata/v1-*.json, by `device.Save` as of 2026-12-02): their image is
// slot A, and they keep their identity, a puf chip's included.
func TestV1StateLoadsAsSlotA(t *testing.T) {
	suite, _ := sigalg.Ed25519.Suite()
	vendorKey, _ := suite.DeriveKey(bytes.Repeat([]byte{0x42}, sigalg.SeedSize))
	for _, class := range []Class{ClassPUF, ClassKeygen} {
		t.Run(string(class), func(t *testing.T) {
			base := filepath.Join("testdata", "v1-"+string(class))
			raw, err := os.ReadFile(base + ".json")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(raw, []byte(`"hallmark-device/v1"`)) || !bytes.Contains(raw, []byte(`"image"`)) {
				t.Fatal("the testdata is not a version 1 state")
			}
			want, _ := os.ReadFile(base + ".identity")
			d, err := Load(base+".json", nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Boot(); err != nil {
				t.Fatal(err)
			}
			checkRunning(t, d, slotA, 0)
			id, err := d.Identity()
			if err != nil || id.String() != strings.TrimSpace(string(want)) {
				t.Fatalf("identity %s (%v), the v1 chip had %s", id, err, want)
			}
			if err := d.InstallUpdate(appImage(t, 2, 0, "app 2", nil, vendorKey)); err != nil {
				t.Fatal(err)
			}
			d = reload(t, d)
			if d.st.Format != stateFormat {
				t.Fatalf("saved as %s", d.st.Format)
			}
			if err := d.Boot(); err != nil {
				t.Fatal(err)
			}
			checkRunning(t, d, slotB, 2)
			if again, _ := d.Identity(); again != id {
				t.Fatal("identity changed with the update")
			}
		})
	}
}

func TestStateRefusesInconsistentSlots(t *testing.T) {
	v := newVendor(t, sigalg.Ed25519)
	d := running(t, Config{Class: ClassKeygen, Algorithm: sigalg.Ed25519, RootKeyHashes: [][32]byte{v.hash}}, v.key)
	d.InstallUpdate(appImage(t, 2, 0, "app 2", nil, v.key))
	good, _ := json.Marshal(d.st)
	for name, edit := range map[string]func(*state){
		"unknown active slot":       func(s *state) { s.Flash.Active = "c" },
		"update in the active slot": func(s *state) { s.Flash.Update.Slot = slotA },
		"unknown update state":      func(s *state) { s.Flash.Update.State = "maybe" },
		"v2 with a v1 image":        func(s *state) { s.Flash.Image = s.Flash.SlotA },
		"v1 with slots":             func(s *state) { s.Format = stateFormatV1 },
		"revocation beyond slots":   func(s *state) { s.OTP.RetiredRoots = 2 },
		"every slot retired":        func(s *state) { s.OTP.RetiredRoots = 1 },
		"unknown outcome":           func(s *state) { s.Flash.LastUpdate.Outcome = "exploded" },
	} {
		var st state
		json.Unmarshal(good, &st)
		edit(&st)
		data, _ := json.Marshal(st)
		if _, err := Unmarshal(data, nil); !errors.Is(err, ErrMalformedState) {
			t.Errorf("%s: Unmarshal = %v", name, err)
		}
	}
}

// TestStateLimitHoldsTwoSlots: the state limit leaves room for the
// largest image, base64-encoded, in both slots plus a megabyte for keys
// and the rest. (Writing such a file takes seconds under -race.)
func TestStateLimitHoldsTwoSlots(t *testing.T) {
	if need := 2*base64.StdEncoding.EncodedLen(firmware.MaxImageSize) + 1<<20; need > MaxStateSize {
		t.Fatalf("a state with two full slots needs %d bytes, the limit is %d", need, MaxStateSize)
	}
}
