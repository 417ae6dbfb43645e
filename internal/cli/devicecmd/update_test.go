package devicecmd_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

func updateImage(t *testing.T, dir string, vendor crypto.Signer, counter uint32, payload string) string {
	t.Helper()
	img, err := firmware.New(firmware.Metadata{Type: firmware.TypeApplication, Version: firmware.Version{Major: 2, Patch: uint16(counter)}, SecurityCounter: counter}, []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Sign(vendor); err != nil {
		t.Fatal(err)
	}
	data, _ := img.MarshalBinary()
	path := filepath.Join(dir, payload[:3]+string(rune('0'+counter))+".hmfw")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDeviceUpdate: an update that boots is confirmed, one that does not
// is rolled back, one the ROM refuses is never written; each failure
// exits 1 with its reason code.
func TestDeviceUpdate(t *testing.T) {
	ed, _ := sigalg.Lookup("ed25519")
	vendor, _ := ed.GenerateKey(rand.Reader)
	spki, _ := sigalg.MarshalPublicKey(vendor.Public())
	dir := t.TempDir()
	dev, err := device.New(device.Config{Class: device.ClassKeygen, Algorithm: sigalg.Ed25519, RootKeyHashes: [][32]byte{sha256.Sum256(spki)}})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(updateImage(t, dir, vendor, 1, "app one"))
	dev.Program(first)
	state := filepath.Join(dir, "chip.json")
	if err := dev.Save(state); err != nil {
		t.Fatal(err)
	}

	out := clitest.MustRun(t, nil, "device", "update", "--state", state, "--image", updateImage(t, dir, vendor, 3, "app three"))
	for _, want := range []string{"installed: 2.0.3 (security counter 3) in slot b", "booted: slot b on trial", "confirmed: slot b active; anti-rollback counter 3"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}

	before, _ := os.ReadFile(state)
	code, _, errOut := clitest.Run(t, nil, "device", "update", "--state", state, "--image", updateImage(t, dir, vendor, 2, "app two"))
	if code != 1 || !strings.Contains(errOut, "rollback refused") || !strings.Contains(errOut, "[reason rollback]") {
		t.Fatalf("older image: exit %d, %s", code, errOut)
	}
	if after, _ := os.ReadFile(state); !bytes.Equal(after, before) {
		t.Fatal("a refused update changed the state file")
	}

	code, _, errOut = clitest.Run(t, nil, "device", "update", "--state", state, "--image", updateImage(t, dir, vendor, 4, device.NoBootMarker))
	if code != 1 || !strings.Contains(errOut, "rolled back") || !strings.Contains(errOut, "[reason no-boot]") {
		t.Fatalf("crashing image: exit %d, %s", code, errOut)
	}
	dev, err = device.Load(state, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := dev.LastUpdate(); s == nil || s.Outcome != device.UpdateRolledBack || s.Reason != device.ReasonNoBoot || dev.SecurityCounter() != 3 {
		t.Fatalf("after the rollback: %+v, counter %d", s, dev.SecurityCounter())
	}
	if err := dev.Boot(); err != nil {
		t.Fatal(err)
	}
	if h, slot, _ := dev.Running(); slot != "b" || h.Version.Patch != 3 {
		t.Fatalf("running %s from slot %s after the rollback, want 2.0.3 from b", h.Version, slot)
	}
}
