package manifest

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// lockedManifest is smallManifest's devices with lock states: the first
// closed, the second left open.
func lockedManifest(t testing.TB) []byte {
	station := deriveKey(t, sigalg.Ed25519, 0x51)
	a := newDevice(t, deriveKey(t, sigalg.Ed25519, 1), PUF, NotInjected, bytes.Repeat([]byte{0xa1}, 16))
	b := newDevice(t, deriveKey(t, sigalg.Ed25519, 2), Inject, Encrypted, bytes.Repeat([]byte{0xa2}, 16))
	a.rec.Locks, b.rec.Locks = LocksClosed, LocksOpen
	return writeManifest(t, station, "B1", a.rec, b.rec)
}

// TestLocksRoundTrip: every lock state a station can record reads back as
// written; an unknown state leaves the field out of the line.
func TestLocksRoundTrip(t *testing.T) {
	station := deriveKey(t, sigalg.Ed25519, 0x51)
	for _, locks := range []Locks{LocksUnknown, LocksOpen, LocksClosed, "debug", "debug,bootloader", "key-store-window,bootloader"} {
		t.Run(locks.Label(), func(t *testing.T) {
			d := newDevice(t, deriveKey(t, sigalg.Ed25519, 1), Keygen, NotInjected, nil)
			d.rec.Locks = locks
			data := writeManifest(t, station, "B1", d.rec)
			if has := bytes.Contains(data, []byte(`"locks"`)); has != (locks != LocksUnknown) {
				t.Fatalf("locks field present %v for %q", has, locks)
			}
			got, sum, err := verifyAll(data, station.Public())
			if err != nil {
				t.Fatal(err)
			}
			if got[0].Locks != locks || got[0].Locks.Closed() != (locks == LocksClosed) {
				t.Fatalf("read locks %q, wrote %q", got[0].Locks, locks)
			}
			if want := map[bool]int{true: 0, false: 1}[locks.Closed()]; sum.NotClosed != want {
				t.Fatalf("NotClosed %d, want %d", sum.NotClosed, want)
			}
		})
	}
}

// TestLocksSpellingRefused: the writer and the reader accept only the
// canonical spelling of a lock set.
func TestLocksSpellingRefused(t *testing.T) {
	station := deriveKey(t, sigalg.Ed25519, 0x51)
	for _, bad := range []Locks{"bootloader,debug", "debug,debug", "closed", "DEBUG", "debug,", ",debug", "open,debug", "jtag"} {
		d := newDevice(t, deriveKey(t, sigalg.Ed25519, 1), Keygen, NotInjected, nil)
		d.rec.Locks = bad
		w, err := NewWriter(new(bytes.Buffer), Header{Batch: "B1", Created: testTime}, station)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Add(t.Context(), d.rec); !errors.Is(err, ErrMalformed) {
			t.Errorf("writer took locks %q: %v", bad, err)
		}
		data := signLines(t, station, headerLine(t, station), recordLine(t, station, 1, d.rec))
		if _, _, err := verifyAll(data, station.Public()); !errors.Is(err, ErrMalformed) {
			t.Errorf("reader took locks %q: %v", bad, err)
		}
	}
	empty := bytes.Replace(recordLine(t, station, 1, newDevice(t, deriveKey(t, sigalg.Ed25519, 1), Keygen, NotInjected, nil).rec),
		[]byte(`"injection":"none",`), []byte(`"injection":"none","locks":"",`), 1)
	if _, _, err := verifyAll(signLines(t, station, headerLine(t, station), empty), station.Public()); !errors.Is(err, ErrMalformed) {
		t.Errorf("reader took an empty locks field: %v", err)
	}
}

// TestTamperedLocksBreakTheSignature is the attack on the field: whoever
// holds a manifest cannot turn an open device into a locked one, or drop
// the field, without the station's key.
func TestTamperedLocksBreakTheSignature(t *testing.T) {
	station := deriveKey(t, sigalg.Ed25519, 0x51).Public()
	data := lockedManifest(t)
	if _, _, err := verifyAll(data, station); err != nil {
		t.Fatal(err)
	}
	for name, tampered := range map[string][]byte{
		"open to closed": bytes.Replace(data, []byte(`"locks":"open"`), []byte(`"locks":"`+LocksClosed+`"`), 1),
		"closed dropped": bytes.Replace(data, []byte(`"locks":"`+LocksClosed+`",`), nil, 1),
		"open dropped":   bytes.Replace(data, []byte(`"locks":"open",`), nil, 1),
	} {
		if bytes.Equal(tampered, data) {
			t.Fatalf("%s: nothing replaced", name)
		}
		if _, _, err := verifyAll(tampered, station); !errors.Is(err, ErrSignature) {
			t.Errorf("%s: %v, want ErrSignature", name, err)
		}
	}
}

// TestManifestWithoutLocksReadsAsUnknown: a manifest written before the
// field existed (the golden file) still verifies, its devices' lock state
// unknown, which counts as not closed.
func TestManifestWithoutLocksReadsAsUnknown(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "golden-ed25519.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	recs, sum, err := verifyAll(data, deriveKey(t, sigalg.Ed25519, 0x51).Public())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Locks != LocksUnknown || r.Locks.Label() != "unknown" {
			t.Fatalf("record %d locks %q", r.Seq, r.Locks)
		}
	}
	if sum.NotClosed != len(recs) {
		t.Fatalf("NotClosed %d of %d", sum.NotClosed, len(recs))
	}
}
