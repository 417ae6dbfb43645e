package device

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/puf"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// enrolled makes a chip of class, boots its IEF and enrols it, returning
// the identity the station would record.
func enrolled(t *testing.T, class Class, v vendor) (*Device, identity.ID) {
	t.Helper()
	d := newDevice(t, Config{Class: class, Algorithm: sigalg.ECDSAP256, RootKeyHashes: [][32]byte{v.hash}, EncryptedChannel: class == ClassInject})
	if class == ClassInject {
		injectKey(t, d)
	}
	bootIEF(t, d, v)
	enr, err := d.Enrol(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return d, enr.Identity
}

// stealKey is the attacker's side of a debug dump: it turns the key-store
// region (and, for a puf chip, the helper data from flash) into the
// device's enrolment key, and returns that key's identity.
func stealKey(t *testing.T, d *Device, keyStore, flash []byte) identity.ID {
	t.Helper()
	if d.Class() == ClassPUF {
		var sram struct {
			SRAM []byte `json:"sram_power_up"`
		}
		var fl struct {
			Helper []byte `json:"puf_helper"`
		}
		if err := json.Unmarshal(keyStore, &sram); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(flash, &fl); err != nil {
			t.Fatal(err)
		}
		helper, err := puf.ParseHelperData(fl.Helper)
		if err != nil {
			t.Fatal(err)
		}
		seed, err := puf.Reconstruct(sram.SRAM, helper)
		if err != nil {
			t.Fatalf("reconstruct the PUF seed from the dump: %v", err)
		}
		keySeed, _ := hkdf.Key(sha256.New, seed[:], nil, pufEnrolmentContext(0, sigalg.ECDSAP256), sigalg.SeedSize)
		suite, _ := sigalg.ECDSAP256.Suite()
		key, err := suite.DeriveKey(keySeed)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := identity.FromPublicKey(key.Public())
		return id
	}
	var ks struct {
		Store struct {
			Key []byte `json:"enrolment_key"`
		} `json:"protected_key_store"`
	}
	if err := json.Unmarshal(keyStore, &ks); err != nil {
		t.Fatal(err)
	}
	key, err := sigalg.ParsePrivateKey(ks.Store.Key)
	if err != nil {
		t.Fatalf("parse the dumped key: %v", err)
	}
	id, _ := identity.FromPublicKey(key.Public())
	return id
}

// TestDebugReadOfAnOpenChipStealsTheKey is the attack the locks close: a
// probe on an open chip's debug port dumps the key store (or the PUF's
// SRAM and helper data) and recovers the device's enrolment key. After
// the station's locks, and after a power cycle, every debug read fails.
func TestDebugReadOfAnOpenChipStealsTheKey(t *testing.T) {
	v := newVendor(t, sigalg.ECDSAP256)
	for _, class := range Classes {
		t.Run(string(class), func(t *testing.T) {
			d, id := enrolled(t, class, v)
			if s := d.LockState(); s.Closed() || s.String() != "open" {
				t.Fatalf("new chip lock state %s", s)
			}
			ks, err := d.DebugRead(RegionKeyStore)
			if err != nil {
				t.Fatalf("debug read of an open chip: %v", err)
			}
			flash, err := d.DebugRead(RegionFlash)
			if err != nil {
				t.Fatal(err)
			}
			if got := stealKey(t, d, ks, flash); got != id {
				t.Fatalf("the dump gave key %s, device is %s", got, id)
			}

			if err := d.Lock(); err != nil {
				t.Fatal(err)
			}
			d = reload(t, d)
			if s := d.LockState(); !s.Closed() || s.String() != "debug,key-store-window,bootloader" {
				t.Fatalf("after reboot lock state %s, want every lock", s)
			}
			for _, r := range Regions {
				if out, err := d.DebugRead(r); !errors.Is(err, ErrDebugLocked) || out != nil {
					t.Errorf("debug read of %s on a locked chip: %d bytes, %v; want ErrDebugLocked", r, len(out), err)
				}
			}
			// The locked chip still works: the ROM boots it and the key
			// store signs.
			if err := d.Boot(); err != nil {
				t.Fatal(err)
			}
			if got, err := d.Identity(); err != nil || got != id {
				t.Fatalf("locked chip identity %s, %v; want %s", got, err, id)
			}
		})
	}
}

// TestKeyStoreWindow: with only the access window closed, a debugger still
// reads OTP and flash but not the key store; the IEF reaches the key store
// and application firmware does not.
func TestKeyStoreWindow(t *testing.T) {
	v := newVendor(t, sigalg.ECDSAP256)
	d, _ := enrolled(t, ClassKeygen, v)
	if err := d.Lock(LockKeyWindow); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DebugRead(RegionKeyStore); !errors.Is(err, ErrAccessWindow) {
		t.Fatalf("debug read of the key store behind the window: %v, want ErrAccessWindow", err)
	}
	if _, err := d.DebugRead(RegionOTP); err != nil {
		t.Fatalf("debug read of OTP with the debug port open: %v", err)
	}
	if _, err := d.FirmwareRead(RegionKeyStore); err != nil {
		t.Fatalf("the IEF reading the key store: %v", err)
	}
	if err := d.Program(appImage(t, 1, 0, "app", nil, v.key)); err != nil {
		t.Fatal(err)
	}
	if err := d.Boot(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.FirmwareRead(RegionKeyStore); !errors.Is(err, ErrAccessWindow) {
		t.Fatalf("application firmware reading the key store: %v, want ErrAccessWindow", err)
	}
	if _, err := d.FirmwareRead(RegionFlash); err != nil {
		t.Fatalf("application firmware reading flash: %v", err)
	}
	if _, _, err := d.Prove("test", []byte("nonce")); err != nil {
		t.Fatalf("the key store signs for the application: %v", err)
	}
}

// TestLockedBootloaderTakesOnlyVerifiedImages: a locked bootloader refuses
// an unsigned image, one signed by another key and one rolled back, keeps
// what flash held, takes a signed image, and takes no key.
func TestLockedBootloaderTakesOnlyVerifiedImages(t *testing.T) {
	v := newVendor(t, sigalg.ECDSAP256)
	other := newVendor(t, sigalg.ECDSAP256)
	d := running(t, Config{Class: ClassInject, Algorithm: sigalg.ECDSAP256, RootKeyHashes: [][32]byte{v.hash}}, v.key)
	if err := d.Program(appImage(t, 5, 0, "app 5", nil, v.key)); err != nil {
		t.Fatal(err)
	}
	if err := d.Boot(); err != nil {
		t.Fatal(err)
	}
	if err := d.Lock(LockBootloader); err != nil {
		t.Fatal(err)
	}
	d = reload(t, d)
	before := bytes.Clone(*d.slot(d.activeSlot()))
	refused := map[string][]byte{
		"unsigned":       appImage(t, 6, 0, "evil", nil),
		"foreign signer": appImage(t, 6, 0, "evil", nil, other.key),
		"rolled back":    appImage(t, 4, 0, "old", nil, v.key),
		"not an image":   []byte("raw machine code"),
	}
	for name, img := range refused {
		if err := d.Program(img); !errors.Is(err, ErrBootloaderLocked) {
			t.Errorf("%s: Program = %v, want ErrBootloaderLocked", name, err)
		}
		if !bytes.Equal(*d.slot(d.activeSlot()), before) {
			t.Fatalf("%s: a refused image changed flash", name)
		}
	}
	if err := d.Program(appImage(t, 1, 0, "old", nil, v.key)); !errors.Is(err, firmware.ErrRollback) {
		t.Errorf("rolled-back image: %v, want the ROM's reason (rollback) wrapped", err)
	}
	if err := d.Program(appImage(t, 6, 0, "app 6", nil, v.key)); err != nil {
		t.Fatalf("a signed image on a locked bootloader: %v", err)
	}
	if err := d.InjectKey([]byte("key"), false); !errors.Is(err, ErrBootloaderLocked) && !errors.Is(err, ErrKeyPresent) {
		t.Fatalf("inject on a locked bootloader: %v", err)
	}
	fresh := newDevice(t, Config{Class: ClassInject, Algorithm: sigalg.ECDSAP256, RootKeyHashes: [][32]byte{v.hash}})
	fresh.Lock(LockBootloader)
	suite, _ := sigalg.ECDSAP256.Suite()
	key, _ := suite.GenerateKey(nil)
	der, _ := sigalg.MarshalPrivateKey(key)
	if err := fresh.InjectKey(der, false); !errors.Is(err, ErrBootloaderLocked) {
		t.Fatalf("inject into a chip with a locked bootloader: %v, want ErrBootloaderLocked", err)
	}
}

// TestLocksAreOneWay: locking again keeps every lock, an unknown lock is
// refused without burning anything, and a version 1 state cannot carry
// lock fuses.
func TestLocksAreOneWay(t *testing.T) {
	v := newVendor(t, sigalg.ECDSAP256)
	d := newDevice(t, Config{Class: ClassKeygen, Algorithm: sigalg.ECDSAP256, RootKeyHashes: [][32]byte{v.hash}})
	if err := d.Lock(LockDebug); err != nil {
		t.Fatal(err)
	}
	if err := d.Lock(LockBootloader, "jtag-off"); err == nil || d.LockState().Bootloader {
		t.Fatalf("unknown lock: %v, state %s", err, d.LockState())
	}
	d.Lock(LockKeyWindow)
	d = reload(t, d)
	if s := d.LockState(); !s.Debug || !s.KeyWindow || s.Bootloader {
		t.Fatalf("lock state %s, want debug and key-store-window", s)
	}
	for _, name := range []string{"debug", "key-store-window", "bootloader"} {
		if _, err := ParseLock(name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ParseRegion("sram"); err == nil {
		t.Fatal("unknown region accepted")
	}
	v1 := []byte(`{"format":"hallmark-device/v1","chip_id":"00","class":"keygen","algorithm":"ecdsa-p256",` +
		`"otp":{"root_key_hashes":["` + hexString(v.hash[:]) + `"],"security_counter":0,"locks":{"debug":true}},` +
		`"flash":{},"protected_key_store":{}}`)
	if _, err := Unmarshal(v1, nil); !errors.Is(err, ErrMalformedState) {
		t.Fatalf("v1 state with lock fuses: %v, want ErrMalformedState", err)
	}
}

func hexString(b []byte) string {
	out, _ := hexBytes(b).MarshalText()
	return string(out)
}
