package firmware

import (
	"bytes"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenImage is fully deterministic: Ed25519 signatures are, and the key
// is derived from a fixed seed.
func goldenImage(t *testing.T) (*Image, [32]byte) {
	t.Helper()
	suite, _ := sigalg.Ed25519.Suite()
	seed := make([]byte, sigalg.SeedSize)
	for i := range seed {
		seed[i] = byte(i)
	}
	key, err := suite.DeriveKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	img, err := New(Metadata{Type: TypeIEF, Version: Version{1, 2, 3}, SecurityCounter: 7}, []byte("hallmark golden firmware\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Sign(key); err != nil {
		t.Fatal(err)
	}
	return img, rootHash(t, key)
}

// TestGoldenImage pins the byte layout of docs/firmware.md: a change to
// the encoding fails here, and then needs a new format version, not
// -update.
func TestGoldenImage(t *testing.T) {
	img, root := goldenImage(t)
	got := marshal(t, img)
	path := filepath.Join("testdata", "golden-ief-ed25519.hmfw")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("image differs from %s:\n got %x\nwant %x", path, got, want)
	}
	if _, err := VerifyBytes(want, Policy{RootKeyHashes: [][32]byte{root}, MinSecurityCounter: 7}); err != nil {
		t.Fatal(err)
	}
	// The fixed part of the header, spelled out as in the documentation.
	wantHeader := "484d4657" + "01" + "01" + "0038" + "0000" + "0001" + "0002" + "0003" + "00000007" + "00000019"
	if h := hex.EncodeToString(want[:fixedSize]); h != wantHeader {
		t.Fatalf("fixed header %s, want %s", h, wantHeader)
	}
}

// TestEncryptedHeaderLayout checks the deterministic parts of an encrypted
// header: everything but the encapsulated key, the recipient and the
// digest of a ciphertext that changes with every encryption.
func TestEncryptedHeaderLayout(t *testing.T) {
	for _, tc := range []struct {
		kem  sealing.KEM
		want string
	}{
		{sealing.MLKEM768X25519, "484d4657" + "01" + "02" + "04bc" + "0001" + "0002" + "0001" + "0000" + "00000007" + "00000041" + "647a"},
		{sealing.MLKEM768, "484d4657" + "01" + "02" + "049c" + "0001" + "0002" + "0001" + "0000" + "00000007" + "00000041" + "0041"},
		{sealing.X25519, "484d4657" + "01" + "02" + "007c" + "0001" + "0002" + "0001" + "0000" + "00000007" + "00000041" + "0020"},
	} {
		t.Run(string(tc.kem), func(t *testing.T) {
			class := classKey(t, tc.kem).Public()
			data := marshal(t, build(t, testMeta, class))
			if got := hex.EncodeToString(data[:fixedSize+2]); got != tc.want {
				t.Fatalf("header starts %s, want %s", got, tc.want)
			}
			fp := class.Fingerprint()
			if !bytes.Equal(data[fixedSize+2:fixedSize+2+32], fp[:]) {
				t.Fatal("recipient fingerprint not at offset 26")
			}
			encLen := int(data[fixedSize+34])<<8 | int(data[fixedSize+35])
			if encLen != tc.kem.EncapsulationSize() || headerSize(data) != fixedSize+36+encLen+32 {
				t.Fatalf("encapsulated key of %d bytes, header of %d", encLen, headerSize(data))
			}
		})
	}
}
