package manifest

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// TestWriterRefusesBadRecords offers records the reader would refuse
// between two good ones: each is refused with the right sentinel, and the
// manifest comes out as if it had never been offered.
func TestWriterRefusesBadRecords(t *testing.T) {
	ctx := context.Background()
	station := newKey(t, sigalg.Ed25519)
	good := newDevice(t, newKey(t, sigalg.ECDSAP256), Inject, Clear, nil)
	other := newDevice(t, newKey(t, sigalg.Ed25519), PUF, NotInjected, nil)
	otherSPKI, _ := sigalg.MarshalPublicKey(other.rec.PublicKey)
	for name, tc := range map[string]struct {
		edit func(*Record)
		want error
	}{
		"no identity":           {func(r *Record) { r.Identity = identity.ID{} }, ErrMalformed},
		"identity of other key": {func(r *Record) { r.Identity = other.rec.Identity }, ErrProof},
		"no public key":         {func(r *Record) { r.PublicKey = nil }, ErrMalformed},
		"SPKI of another key":   {func(r *Record) { r.SPKI = otherSPKI }, ErrMalformed},
		"algorithm of other":    {func(r *Record) { r.Algorithm = sigalg.Ed25519 }, ErrMalformed},
		"algorithm alias":       {func(r *Record) { r.Algorithm = "p256" }, ErrMalformed},
		"algorithm unknown":     {func(r *Record) { r.Algorithm = "rsa" }, ErrMalformed},
		"root of trust unknown": {func(r *Record) { r.RootOfTrust = "tpm" }, ErrMalformed},
		"inject without mode":   {func(r *Record) { r.Injection = NotInjected }, ErrMalformed},
		"puf injected":          {func(r *Record) { r.RootOfTrust = PUF }, ErrMalformed},
		"keygen mode empty":     {func(r *Record) { r.RootOfTrust, r.Injection = Keygen, "" }, ErrMalformed},
		"another station":       {func(r *Record) { r.Station = other.rec.Identity }, ErrStationMismatch},
		"no time":               {func(r *Record) { r.Time = time.Time{} }, ErrMalformed},
		"time after 9999":       {func(r *Record) { r.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, ErrMalformed},
		"nonce too short":       {func(r *Record) { r.Nonce = r.Nonce[:MinNonce-1] }, ErrMalformed},
		"nonce too long":        {func(r *Record) { r.Nonce = make([]byte, MaxNonce+1) }, ErrMalformed},
		"no proof":              {func(r *Record) { r.Proof = nil }, ErrMalformed},
		"proof forged":          {func(r *Record) { r.Proof = bytes.Clone(r.Proof); r.Proof[10] ^= 1 }, ErrProof},
		"seq out of order":      {func(r *Record) { r.Seq = 5 }, ErrMalformed},
		"duplicate":             {func(r *Record) { *r = good.rec }, ErrDuplicate},
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := NewWriter(&buf, Header{Batch: "B", Created: testTime}, station)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Add(ctx, good.rec); err != nil {
				t.Fatal(err)
			}
			bad := newDevice(t, newKey(t, sigalg.ECDSAP256), Inject, Encrypted, nil).rec
			tc.edit(&bad)
			if err := w.Add(ctx, bad); !errors.Is(err, tc.want) {
				t.Fatalf("Add: %v, want %v", err, tc.want)
			}
			if err := w.Add(ctx, other.rec); err != nil {
				t.Fatalf("Add after a refused record: %v", err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got, _, err := verifyAll(buf.Bytes(), station.Public())
			if err != nil || len(got) != 2 || got[1].Seq != 2 || got[1].Identity != other.rec.Identity {
				t.Fatalf("manifest after a refused record: %v, %d records", err, len(got))
			}
		})
	}
}

func TestWriterHeader(t *testing.T) {
	station := newKey(t, sigalg.MLDSA65)
	for _, batch := range []string{"", "-x", "a b", "ü", strings.Repeat("b", MaxBatchLen+1), "a/b", "a\"b"} {
		if _, err := NewWriter(io.Discard, Header{Batch: batch}, station); !errors.Is(err, ErrMalformed) {
			t.Errorf("batch %q: %v, want ErrMalformed", batch, err)
		}
	}
	for _, batch := range []string{"B", "2026-11-25_line3.B0042", strings.Repeat("b", MaxBatchLen)} {
		if _, err := NewWriter(io.Discard, Header{Batch: batch}, station); err != nil {
			t.Errorf("batch %q: %v", batch, err)
		}
	}
	other := newKey(t, sigalg.MLDSA65)
	otherID, _ := identity.FromPublicKey(other.Public())
	for name, hdr := range map[string]Header{
		"station identity":   {Batch: "B", Station: otherID},
		"station algorithm":  {Batch: "B", StationAlgorithm: sigalg.MLDSA87},
		"station public key": {Batch: "B", StationPublicKey: other.Public()},
	} {
		if _, err := NewWriter(io.Discard, hdr, station); !errors.Is(err, ErrStationMismatch) {
			t.Errorf("%s of another station: %v, want ErrStationMismatch", name, err)
		}
	}
	if _, err := NewWriter(io.Discard, Header{Batch: "B"}, nil); err == nil {
		t.Error("NewWriter without a signer succeeded")
	}
	// Created defaults to now, and times are kept to the second in UTC.
	w, _ := NewWriter(io.Discard, Header{Batch: "B"}, station)
	if c := w.Header().Created; time.Since(c) > time.Hour || c.Nanosecond() != 0 || c.Location() != time.UTC {
		t.Errorf("default Created %v", c)
	}
}

func TestWriterTimesAndSPKI(t *testing.T) {
	station := newKey(t, sigalg.Ed25519)
	dev := newDevice(t, newKey(t, sigalg.MLDSA44), Keygen, NotInjected, nil)
	rec := dev.rec
	rec.Time = time.Date(2026, 11, 25, 10, 30, 15, 999_999_999, time.FixedZone("CET", 3600))
	// A record given only its SPKI works as well as one given the key.
	rec.SPKI, _ = sigalg.MarshalPublicKey(rec.PublicKey)
	rec.PublicKey = nil
	data := writeManifest(t, station, "B", rec)
	if !bytes.Contains(data, []byte(`"time":"2026-11-25T09:30:15Z"`)) {
		t.Fatalf("time not written in UTC to the second:\n%s", data)
	}
	got, _, err := verifyAll(data, station.Public())
	if err != nil || len(got) != 1 || got[0].PublicKey == nil {
		t.Fatalf("%v, %v", got, err)
	}
}

type failingWriter struct{ after int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.after -= len(p); f.after < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestWriterStates(t *testing.T) {
	ctx := context.Background()
	station := newKey(t, sigalg.Ed25519)
	dev := newDevice(t, newKey(t, sigalg.Ed25519), PUF, NotInjected, nil)

	w, _ := NewWriter(io.Discard, Header{Batch: "B"}, station)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Add(ctx, dev.rec); !errors.Is(err, ErrWriterClosed) {
		t.Errorf("Add after Close: %v", err)
	}
	if err := w.Close(); !errors.Is(err, ErrWriterClosed) {
		t.Errorf("second Close: %v", err)
	}

	w, _ = NewWriter(&failingWriter{after: 10}, Header{Batch: "B"}, station)
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Close onto a failing writer: %v", err)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	w, _ = NewWriter(io.Discard, Header{Batch: "B"}, station)
	if err := w.Add(cancelled, dev.rec); !errors.Is(err, context.Canceled) {
		t.Errorf("Add with a cancelled context: %v", err)
	}
}

// lyingSigner claims the station's public key but signs with another key,
// as a misconfigured HSM slot would.
type lyingSigner struct {
	public crypto.PublicKey
	key    crypto.Signer
}

func (l lyingSigner) Public() crypto.PublicKey { return l.public }
func (l lyingSigner) Sign(r io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	return l.key.Sign(r, msg, opts)
}

func TestWriterChecksItsOwnSignature(t *testing.T) {
	station := newKey(t, sigalg.Ed25519)
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{Batch: "B"}, lyingSigner{public: station.Public(), key: newKey(t, sigalg.Ed25519)})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); !errors.Is(err, sigalg.ErrInvalidSignature) {
		t.Fatalf("Close with a signer that does not match its public key: %v", err)
	}
	if bytes.Contains(buf.Bytes(), trailerPrefix) {
		t.Fatal("a trailer was written with a bad signature")
	}
}
