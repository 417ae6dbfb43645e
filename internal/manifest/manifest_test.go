package manifest

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// TestRoundTripEverySuite writes a manifest with each suite as station key
// and devices of every suite and every root of trust, and reads it back.
func TestRoundTripEverySuite(t *testing.T) {
	provenance := []struct {
		rot RootOfTrust
		inj Injection
	}{{PUF, NotInjected}, {Keygen, NotInjected}, {Inject, Encrypted}, {Inject, Clear}}
	for _, stationSuite := range sigalg.All() {
		t.Run("station "+string(stationSuite.ID()), func(t *testing.T) {
			station := newKey(t, stationSuite.ID())
			var recs []Record
			for i, devSuite := range sigalg.All() {
				p := provenance[i%len(provenance)]
				recs = append(recs, newDevice(t, newKey(t, devSuite.ID()), p.rot, p.inj, nil).rec)
			}
			data := writeManifest(t, station, "batch-2026.11_25", recs...)

			got, sum, err := verifyAll(data, station.Public())
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !sum.Verified || sum.Count != len(recs) || len(got) != len(recs) {
				t.Fatalf("summary %+v, %d records delivered, want %d verified", sum, len(got), len(recs))
			}
			stationID, _ := identity.FromPublicKey(station.Public())
			if sum.Header.Batch != "batch-2026.11_25" || sum.Header.Station != stationID ||
				sum.Header.StationAlgorithm != stationSuite.ID() || !sum.Header.Created.Equal(testTime) {
				t.Fatalf("header %+v", sum.Header)
			}
			for i, rec := range got {
				assertRecord(t, recs[i], rec, uint64(i+1), stationID)
			}
			if sum.ByAlgorithm[sigalg.MLDSA65] != 1 || sum.ByRootOfTrust[PUF] != 2 || sum.ByInjection[Clear] != 1 {
				t.Fatalf("counts %v %v %v", sum.ByAlgorithm, sum.ByRootOfTrust, sum.ByInjection)
			}
			// Inspect reads the same without a key, and says it did not verify.
			isum, err := Inspect(context.Background(), bytes.NewReader(data), nil)
			if err != nil || isum.Verified || isum.Count != len(recs) || isum.Digest != sum.Digest {
				t.Fatalf("Inspect: %+v, %v", isum, err)
			}
		})
	}
}

func assertRecord(t *testing.T, want, got Record, seq uint64, station identity.ID) {
	t.Helper()
	wantSPKI, _ := sigalg.MarshalPublicKey(want.PublicKey)
	gotSPKI, _ := sigalg.MarshalPublicKey(got.PublicKey)
	switch {
	case got.Seq != seq, got.Identity != want.Identity, got.Algorithm != want.Algorithm,
		!bytes.Equal(got.SPKI, wantSPKI), !bytes.Equal(gotSPKI, wantSPKI),
		got.RootOfTrust != want.RootOfTrust, got.Injection != want.Injection, got.Station != station,
		!got.Time.Equal(want.Time), !bytes.Equal(got.Nonce, want.Nonce), !bytes.Equal(got.Proof, want.Proof):
		t.Fatalf("record %d read back as %+v, wrote %+v", seq, got, want)
	}
}

// smallManifest is an Ed25519-signed manifest of two devices: small enough
// to change every byte of, deterministic but for the ECDSA proof.
func smallManifest(t testing.TB) ([]byte, []device) {
	station := deriveKey(t, sigalg.Ed25519, 0x51)
	devs := []device{
		newDevice(t, deriveKey(t, sigalg.Ed25519, 1), PUF, NotInjected, bytes.Repeat([]byte{0xa1}, 16)),
		newDevice(t, deriveKey(t, sigalg.ECDSAP256, 2), Inject, Encrypted, bytes.Repeat([]byte{0xa2}, 16)),
	}
	return writeManifest(t, station, "B1", devs[0].rec, devs[1].rec), devs
}

// TestEveryByteChangeIsDetected flips one bit of each byte of a manifest in
// turn: Verify must refuse every variant, and must never deliver a record
// that differs from what the station wrote.
func TestEveryByteChangeIsDetected(t *testing.T) {
	data, devs := smallManifest(t)
	station := deriveKey(t, sigalg.Ed25519, 0x51).Public()
	if _, _, err := verifyAll(data, station); err != nil {
		t.Fatalf("the unchanged manifest: %v", err)
	}
	for i := range data {
		changed := bytes.Clone(data)
		changed[i] ^= 1 << (i % 8)
		got, _, err := verifyAll(changed, station)
		if err == nil {
			t.Fatalf("byte %d (%q) changed: Verify accepted the manifest", i, data[i])
		}
		for j, rec := range got {
			if rec.Identity != devs[j].rec.Identity || !bytes.Equal(rec.Proof, devs[j].rec.Proof) {
				t.Fatalf("byte %d changed: a changed record %d was delivered", i, j+1)
			}
		}
	}
}

func TestStationMismatch(t *testing.T) {
	data, _ := smallManifest(t)
	for _, other := range []sigalg.ID{sigalg.Ed25519, sigalg.MLDSA65} {
		if _, _, err := verifyAll(data, newKey(t, other).Public()); !errors.Is(err, ErrStationMismatch) {
			t.Errorf("Verify with another %s station key: %v, want ErrStationMismatch", other, err)
		}
	}
	// An impostor who re-signs the batch under its own key names itself.
	impostor := newKey(t, sigalg.Ed25519)
	_, devs := smallManifest(t)
	forged := writeManifest(t, impostor, "B1", devs[0].rec, devs[1].rec)
	if _, _, err := verifyAll(forged, deriveKey(t, sigalg.Ed25519, 0x51).Public()); !errors.Is(err, ErrStationMismatch) {
		t.Errorf("manifest re-signed by an impostor: %v, want ErrStationMismatch", err)
	}
	// A record naming another station than its header.
	station := deriveKey(t, sigalg.Ed25519, 0x51)
	rec := devs[0].rec
	rec.Station = impostorID(t, impostor)
	spki, _ := sigalg.MarshalPublicKey(rec.PublicKey)
	rec.SPKI, rec.Seq = spki, 1
	line, _ := encodeLine(rec.toWire())
	data = signLines(t, station, headerLine(t, station), line)
	if _, _, err := verifyAll(data, station.Public()); !errors.Is(err, ErrStationMismatch) {
		t.Errorf("record of another station: %v, want ErrStationMismatch", err)
	}
}

func impostorID(t *testing.T, key crypto.Signer) identity.ID {
	t.Helper()
	id, err := identity.FromPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestTruncated(t *testing.T) {
	data, _ := smallManifest(t)
	station := deriveKey(t, sigalg.Ed25519, 0x51).Public()
	for _, n := range []int{0, 1, len(splitLines(data)[0]), len(data) / 2, len(data) - 2, len(data) - 1} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			if _, _, err := verifyAll(data[:n], station); !errors.Is(err, ErrMalformed) {
				t.Fatalf("first %d of %d bytes: %v, want ErrMalformed", n, len(data), err)
			}
		})
	}
	// Dropping the last record but keeping the trailer breaks the count.
	lines := splitLines(data)
	dropped := bytes.Join(append(lines[:2:2], lines[3]), nil)
	if _, _, err := verifyAll(dropped, station); !errors.Is(err, ErrSignature) {
		t.Fatalf("last record dropped: %v, want ErrSignature", err)
	}
}

func TestReorderedLines(t *testing.T) {
	data, _ := smallManifest(t)
	station := deriveKey(t, sigalg.Ed25519, 0x51).Public()
	l := splitLines(data)
	for name, order := range map[string][]int{
		"records swapped":         {0, 2, 1, 3},
		"header after a record":   {1, 0, 2, 3},
		"trailer before a record": {0, 1, 3, 2},
		"record repeated":         {0, 1, 1, 2, 3},
		"header repeated":         {0, 0, 1, 2, 3},
		"trailer repeated":        {0, 1, 2, 3, 3},
		"no header":               {1, 2, 3},
		"trailer only":            {3},
		"records without trailer": {0, 1, 2},
		"trailer for a record":    {0, 3},
	} {
		t.Run(name, func(t *testing.T) {
			var reordered []byte
			for _, i := range order {
				reordered = append(reordered, l[i]...)
			}
			if _, _, err := verifyAll(reordered, station); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestDuplicateIdentity(t *testing.T) {
	station := newKey(t, sigalg.MLDSA44)
	dev := newDevice(t, newKey(t, sigalg.ECDSAP256), Keygen, NotInjected, nil)
	w, err := NewWriter(&bytes.Buffer{}, Header{Batch: "B"}, station)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(context.Background(), dev.rec); err != nil {
		t.Fatal(err)
	}
	// The same device again, even with a fresh proof, is refused.
	again := newDevice(t, dev.key, PUF, NotInjected, nil)
	if err := w.Add(context.Background(), again.rec); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("Add of a duplicate: %v, want ErrDuplicate", err)
	}
	if w.Count() != 1 {
		t.Fatalf("Count %d after a refused duplicate", w.Count())
	}
	// A station that writes one anyway is caught by the reader.
	data := signLines(t, station, headerLine(t, station),
		recordLine(t, station, 1, dev.rec), recordLine(t, station, 2, again.rec))
	got, _, err := verifyAll(data, station.Public())
	if !errors.Is(err, ErrDuplicate) || len(got) != 1 {
		t.Fatalf("Verify of a duplicate: %v after %d records, want ErrDuplicate after 1", err, len(got))
	}
}

func TestForgedProof(t *testing.T) {
	station := newKey(t, sigalg.Ed25519)
	dev := newDevice(t, newKey(t, sigalg.MLDSA65), PUF, NotInjected, nil)
	other := newDevice(t, newKey(t, sigalg.MLDSA65), PUF, NotInjected, nil)
	cases := map[string]func(*Record){
		"proof over another nonce": func(r *Record) { r.Nonce = bytes.Repeat([]byte{7}, 32) },
		"proof of another device":  func(r *Record) { r.Proof = other.rec.Proof },
		"identity of another key":  func(r *Record) { r.Identity = other.rec.Identity },
		"key of another identity":  func(r *Record) { r.PublicKey = other.rec.PublicKey },
		"proof truncated":          func(r *Record) { r.Proof = r.Proof[:len(r.Proof)-1] },
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			rec := dev.rec
			edit(&rec)
			w, err := NewWriter(&bytes.Buffer{}, Header{Batch: "B"}, station)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Add(context.Background(), rec); !errors.Is(err, ErrProof) {
				t.Fatalf("Add: %v, want ErrProof", err)
			}
			data := signLines(t, station, headerLine(t, station), recordLine(t, station, 1, rec))
			if _, _, err := verifyAll(data, station.Public()); !errors.Is(err, ErrProof) {
				t.Fatalf("Verify: %v, want ErrProof", err)
			}
		})
	}
}
