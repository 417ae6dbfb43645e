package device

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// FuzzUnmarshal feeds the state parser; an accepted state must save and
// load to the same bytes.
func FuzzUnmarshal(f *testing.F) {
	v := newVendor(f, sigalg.Ed25519)
	classKey, _ := sealing.GenerateKey(sealing.DefaultKEM)
	for _, cfg := range []Config{
		{Class: ClassPUF, Algorithm: sigalg.Ed25519, ClassKey: classKey},
		{Class: ClassKeygen, Algorithm: sigalg.ECDSAP256},
		{Class: ClassInject, Algorithm: sigalg.MLDSA44, EncryptedChannel: true},
		{Class: ClassInject, Algorithm: sigalg.Ed25519, EncryptedChannel: true, Transport: TransportECDHP256},
	} {
		cfg.RootKeyHashes = [][32]byte{v.hash}
		d := newDevice(f, cfg)
		data, _ := json.Marshal(d.st)
		f.Add(data)
	}
	locked := newDevice(f, Config{Class: ClassKeygen, Algorithm: sigalg.Ed25519, RootKeyHashes: [][32]byte{v.hash}})
	locked.Lock()
	lockedState, _ := json.Marshal(locked.st)
	f.Add(lockedState) // a chip the station locked: the lock fuses in OTP
	f.Add([]byte(`{"format":"hallmark-device/v1"}`))
	// Version 1 states as the single-image release wrote them, and a
	// version 2 state with both slots, an update and a pending migration.
	for _, name := range []string{"v1-puf.json", "v1-keygen.json"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	d := newDevice(f, Config{Class: ClassKeygen, Algorithm: sigalg.Ed25519, RootKeyHashes: [][32]byte{v.hash}})
	bootIEF(f, d, v)
	d.Enrol([]byte("n"))
	d.InstallUpdate(image(f, firmware.TypeApplication, 1, []byte("app"), nil, v.key))
	d.BeginMigration(sigalg.MLDSA44)
	data, _ := json.Marshal(d.st)
	f.Add(data)
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Unmarshal(data, nil)
		if err != nil {
			return
		}
		path := filepath.Join(t.TempDir(), "d.json")
		if err := d.Save(path); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(path, nil); err != nil {
			t.Fatalf("a state Unmarshal accepted does not load after Save: %v", err)
		}
	})
}
