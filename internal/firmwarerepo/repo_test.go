package firmwarerepo

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

func testKey(tb testing.TB, alg sigalg.ID, n byte) crypto.Signer {
	tb.Helper()
	s, err := alg.Suite()
	if err != nil {
		tb.Fatal(err)
	}
	k, err := s.DeriveKey(bytes.Repeat([]byte{n}, sigalg.SeedSize))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func rootOf(tb testing.TB, k crypto.Signer) [32]byte {
	tb.Helper()
	id, err := identity.FromPublicKey(k.Public())
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func buildImage(tb testing.TB, meta firmware.Metadata, class *sealing.PublicKey, keys ...crypto.Signer) []byte {
	tb.Helper()
	img, err := firmware.New(meta, []byte("application firmware"))
	if err != nil {
		tb.Fatal(err)
	}
	if class != nil {
		if err := img.Encrypt(class); err != nil {
			tb.Fatal(err)
		}
	}
	for _, k := range keys {
		if err := img.Sign(k); err != nil {
			tb.Fatal(err)
		}
	}
	data, err := img.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

var app = firmware.Metadata{Type: firmware.TypeApplication, Version: firmware.Version{Major: 1}, SecurityCounter: 2}

// TestCheck: each rule of the boot ROM an upload breaks has its own code;
// what a device would boot passes.
func TestCheck(t *testing.T) {
	ec, pq, stranger := testKey(t, sigalg.ECDSAP256, 1), testKey(t, sigalg.MLDSA44, 2), testKey(t, sigalg.Ed25519, 3)
	class, err := sealing.GenerateKey(sealing.X25519)
	if err != nil {
		t.Fatal(err)
	}
	other, err := sealing.GenerateKey(sealing.X25519)
	if err != nil {
		t.Fatal(err)
	}
	hybrid := store.FirmwarePolicy{Roots: [][32]byte{rootOf(t, ec), rootOf(t, pq)}, ClassKey: class.Public().Fingerprint()}
	retired := hybrid
	retired.Retired = 1
	good := buildImage(t, app, class.Public(), ec, pq)
	retireBoth := app
	retireBoth.RetireSlots = 3
	retireAbsent := app
	retireAbsent.RetireSlots = 4
	cases := []struct {
		name   string
		data   []byte
		policy store.FirmwarePolicy
		code   string
	}{
		{"hybrid, encrypted to the class key", good, hybrid, ""},
		{"hybrid, in the clear", buildImage(t, app, nil, pq, ec), hybrid, ""},
		{"post-quantum only after retirement", buildImage(t, app, nil, pq), retired, ""},
		{"no roots", good, store.FirmwarePolicy{}, CodeNoPolicy},
		{"every root retired", good, store.FirmwarePolicy{Roots: hybrid.Roots, Retired: 3}, CodeNoPolicy},
		{"truncated", good[:len(good)-3], hybrid, CodeMalformed},
		{"empty", nil, hybrid, CodeMalformed},
		{"unsigned", buildImage(t, app, nil), hybrid, CodeUntrusted},
		{"a stranger", buildImage(t, app, nil, stranger), hybrid, CodeUntrusted},
		{"one of two", buildImage(t, app, nil, pq, stranger), hybrid, CodeHybridIncomplete},
		{"retired root only", buildImage(t, app, nil, ec), retired, CodeRetiredRoot},
		{"retires every slot", buildImage(t, retireBoth, nil, ec, pq), hybrid, CodeBadRetirement},
		{"retires a slot the devices lack", buildImage(t, retireAbsent, nil, ec, pq), hybrid, CodeBadRetirement},
		{"another class key", buildImage(t, app, other.Public(), ec, pq), hybrid, CodeWrongRecipient},
		{"encrypted, no class key", good, store.FirmwarePolicy{Roots: hybrid.Roots}, CodeWrongRecipient},
		{"enrolment firmware", buildImage(t, firmware.Metadata{Type: firmware.TypeIEF}, nil, ec, pq), hybrid, CodeWrongType},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img, err := Check(c.data, c.policy)
			if c.code == "" {
				if err != nil || img == nil {
					t.Fatalf("Check = %v", err)
				}
				return
			}
			var ae *admin.Error
			if !errors.As(err, &ae) || ae.Code != c.code {
				t.Fatalf("Check = %v, want code %s", err, c.code)
			}
		})
	}
	// A bad signature: flip a byte of the last signature value.
	bad := bytes.Clone(good)
	bad[len(bad)-1] ^= 1
	if _, err := Check(bad, hybrid); !hasCode(err, CodeBadSignature) {
		t.Fatalf("altered signature: %v", err)
	}
}

func hasCode(err error, code string) bool {
	var ae *admin.Error
	return errors.As(err, &ae) && ae.Code == code
}

// TestBlobs: an image is stored once under its digest, whole; a digest
// that does not match the data is refused; concurrent writers of one
// image leave one file and no temporary ones.
func TestBlobs(t *testing.T) {
	dir := t.TempDir()
	b, err := OpenBlobs(filepath.Join(dir, "firmware", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("image"), 1000)
	digest := sha256.Sum256(data)
	if b.Has(digest) {
		t.Fatal("empty store has the image")
	}
	if _, err := b.Open(digest); !errors.Is(err, ErrBlobMissing) {
		t.Fatalf("Open of a missing blob: %v", err)
	}
	if err := b.Put(sha256.Sum256([]byte("other")), data); err == nil {
		t.Fatal("Put under another digest succeeded")
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = b.Put(digest, data) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(b.dir)
	if len(entries) != 1 || strings.HasPrefix(entries[0].Name(), ".") {
		t.Fatalf("blob directory holds %v", entries)
	}
	f, err := b.Open(digest)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, _ := os.ReadFile(f.Name())
	if !bytes.Equal(got, data) {
		t.Fatal("stored bytes differ")
	}
}
