package firmware

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

var retireMeta = Metadata{Type: TypeApplication, Version: Version{3, 0, 0}, SecurityCounter: 9, RetireSlots: 1}

func TestRetirementFieldSelectsVersion2(t *testing.T) {
	ed := signer(t, sigalg.Ed25519, 1)
	if img := build(t, testMeta, nil, ed); img.Header().Format != FormatVersion {
		t.Fatalf("an image retiring nothing is version %d, want 1", img.Header().Format)
	}
	for _, class := range []*sealing.PublicKey{nil, classKey(t, sealing.X25519).Public()} {
		data := marshal(t, build(t, retireMeta, class, ed))
		if data[offVersion] != FormatVersionRetire {
			t.Fatalf("version byte %d, want 2", data[offVersion])
		}
		img := mustParse(t, data)
		if h := img.Header(); h.RetireSlots != 1 || h.Format != FormatVersionRetire || (h.Encryption != nil) != (class != nil) {
			t.Fatalf("parsed header %+v", h)
		}
		if again := marshal(t, img); !bytes.Equal(again, data) {
			t.Fatal("a version 2 image does not marshal back to its bytes")
		}
	}
	if _, err := New(Metadata{Type: TypeApplication, RetireSlots: 1 << MaxRootSlots}, testCode); err == nil {
		t.Fatal("New accepted retirement of slot 4")
	}
}

func TestRetirementParseRefusals(t *testing.T) {
	ed := signer(t, sigalg.Ed25519, 1)
	v2 := marshal(t, build(t, retireMeta, nil, ed))
	v1 := marshal(t, build(t, testMeta, nil, ed))
	downgraded := bytes.Clone(v2)
	downgraded[offVersion] = FormatVersion
	upgraded := bytes.Clone(v1)
	upgraded[offVersion] = FormatVersionRetire
	for name, data := range map[string][]byte{
		"mask beyond four slots":     put16(v2, offRetire, 1<<MaxRootSlots),
		"version 2 read as 1":        downgraded,
		"version 1 read as 2":        upgraded,
		"version 3":                  xor(v2, offVersion, 1),
		"version 2 header truncated": v2[:fixedSizeV2+digestSize-1],
	} {
		if _, err := Parse(data); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Parse = %v, want ErrMalformed", name, err)
		}
	}
}

// TestVerifyRootRetirement: with one slot retired, only the live root
// counts; an image signed only under the retired one is refused as such;
// an image may retire a slot only while another stays live.
func TestVerifyRootRetirement(t *testing.T) {
	ec, pq, other := signer(t, sigalg.ECDSAP256, 1), signer(t, sigalg.MLDSA65, 1), signer(t, sigalg.Ed25519, 3)
	slots := [][32]byte{rootHash(t, ec), rootHash(t, pq)}
	hybrid := Policy{RootKeyHashes: slots}
	ecRetired := Policy{RootKeyHashes: slots, Retired: 1}
	cases := []struct {
		name   string
		meta   Metadata
		policy Policy
		keys   []crypto.Signer
		want   error
	}{
		{"hybrid before retirement", testMeta, hybrid, []crypto.Signer{ec, pq}, nil},
		{"classical only before retirement", testMeta, hybrid, []crypto.Signer{ec}, ErrUntrustedKey},
		{"classical only after retirement", testMeta, ecRetired, []crypto.Signer{ec}, ErrRetiredRoot},
		{"classical and a stranger after retirement", testMeta, ecRetired, []crypto.Signer{ec, other}, ErrRetiredRoot},
		{"stranger after retirement", testMeta, ecRetired, []crypto.Signer{other}, ErrUntrustedKey},
		{"post-quantum only after retirement", testMeta, ecRetired, []crypto.Signer{pq}, nil},
		{"hybrid after retirement", testMeta, ecRetired, []crypto.Signer{ec, pq}, nil},
		{"retire slot 0, hybrid", retireMeta, hybrid, []crypto.Signer{ec, pq}, nil},
		{"retire slot 0 again", retireMeta, ecRetired, []crypto.Signer{pq}, nil},
		{"retire both slots", Metadata{Type: TypeApplication, RetireSlots: 3}, hybrid, []crypto.Signer{ec, pq}, ErrRetireLastRoot},
		{"retire the live slot", Metadata{Type: TypeApplication, RetireSlots: 2}, ecRetired, []crypto.Signer{pq}, ErrRetireLastRoot},
		{"retire a slot the device lacks", Metadata{Type: TypeApplication, RetireSlots: 4}, hybrid, []crypto.Signer{ec, pq}, ErrRetireUnknownSlot},
		{"every slot retired", testMeta, Policy{RootKeyHashes: slots, Retired: 3}, []crypto.Signer{ec, pq}, ErrNoRootKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			img, err := New(tc.meta, testCode)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range tc.keys {
				if err := img.Sign(k); err != nil {
					t.Fatal(err)
				}
			}
			_, err = VerifyBytes(marshal(t, img), tc.policy)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestGoldenRetireImage pins format version 2: an application 3.0.0,
// counter 9, retiring slot 0, signed by the Ed25519 keys derived from the
// seeds 00 01 … 1f (slot 0) and 20 21 … 3f (slot 1).
func TestGoldenRetireImage(t *testing.T) {
	suite, _ := sigalg.Ed25519.Suite()
	var keys []crypto.Signer
	var slots [][32]byte
	for _, start := range []byte{0, 32} {
		seed := make([]byte, sigalg.SeedSize)
		for i := range seed {
			seed[i] = start + byte(i)
		}
		key, err := suite.DeriveKey(seed)
		if err != nil {
			t.Fatal(err)
		}
		keys, slots = append(keys, key), append(slots, rootHash(t, key))
	}
	img, err := New(retireMeta, []byte("hallmark golden firmware\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if err := img.Sign(k); err != nil {
			t.Fatal(err)
		}
	}
	got := marshal(t, img)
	path := filepath.Join("testdata", "golden-app-retire-v2.hmfw")
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
	v, err := VerifyBytes(want, Policy{RootKeyHashes: slots, MinSecurityCounter: 9})
	if err != nil || v.Header.RetireSlots != 1 {
		t.Fatalf("Verify = %v", err)
	}
	wantHeader := "484d4657" + "02" + "02" + "003a" + "0000" + "0003" + "0000" + "0000" + "00000009" + "00000019" + "0001"
	if h := hex.EncodeToString(want[:fixedSizeV2]); h != wantHeader {
		t.Fatalf("fixed header %s, want %s", h, wantHeader)
	}
}
