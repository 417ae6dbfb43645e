package device

import (
	"encoding/json"
	"path/filepath"
	"testing"

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
	} {
		cfg.RootKeyHashes = [][32]byte{v.hash}
		d := newDevice(f, cfg)
		data, _ := json.Marshal(d.st)
		f.Add(data)
	}
	f.Add([]byte(`{"format":"hallmark-device/v1"}`))
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
