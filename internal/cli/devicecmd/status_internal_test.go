package devicecmd

import (
	"crypto/rand"
	"crypto/sha256"
	"path/filepath"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// TestRunningVersion: `device status` reports the version of the image
// in the chip's flash, the one the ROM booted.
func TestRunningVersion(t *testing.T) {
	ed, _ := sigalg.Lookup("ed25519")
	vendor, err := ed.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	img, err := firmware.New(firmware.Metadata{Type: firmware.TypeIEF, Version: firmware.Version{Major: 3, Minor: 1, Patch: 4}, SecurityCounter: 2},
		device.IEFPayload())
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Sign(vendor); err != nil {
		t.Fatal(err)
	}
	raw, _ := img.MarshalBinary()
	spki, _ := sigalg.MarshalPublicKey(vendor.Public())
	d, err := device.New(device.Config{Class: device.ClassKeygen, Algorithm: sigalg.ECDSAP256, RootKeyHashes: [][32]byte{sha256.Sum256(spki)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Program(raw); err != nil {
		t.Fatal(err)
	}
	if err := d.Boot(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "chip.json")
	if err := d.Save(path); err != nil {
		t.Fatal(err)
	}
	v, err := runningVersion(path)
	if err != nil || v.String() != "3.1.4" {
		t.Fatalf("runningVersion = %v, %v; want 3.1.4", v, err)
	}
	if d.SecurityCounter() != 2 {
		t.Errorf("counter %d after boot, want 2", d.SecurityCounter())
	}
	empty, _ := device.New(device.Config{Class: device.ClassKeygen, Algorithm: sigalg.ECDSAP256, RootKeyHashes: [][32]byte{sha256.Sum256(spki)}})
	emptyPath := filepath.Join(t.TempDir(), "empty.json")
	if err := empty.Save(emptyPath); err != nil {
		t.Fatal(err)
	}
	if _, err := runningVersion(emptyPath); err == nil {
		t.Error("a chip without an image reported a version")
	}
}
