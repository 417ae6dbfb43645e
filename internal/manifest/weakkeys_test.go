package manifest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/sigalg/sigalgtest"
)

// forgeableKeys are keys anyone can sign for, one per suite family, each
// with the signer an attacker builds from public data.
func forgeableKeys(t testing.TB) map[string]crypto.Signer {
	t.Helper()
	var rho [32]byte
	rand.Read(rho[:])
	zero44, err := sigalgtest.ZeroMLDSA(sigalg.MLDSA44, rho)
	if err != nil {
		t.Fatal(err)
	}
	zero65, _ := sigalgtest.ZeroMLDSA(sigalg.MLDSA65, rho)
	zero87, _ := sigalgtest.ZeroMLDSA(sigalg.MLDSA87, [32]byte{})
	g, _ := sigalgtest.P256Scalar(1)
	b, _ := sigalgtest.NewEd25519Scalar(-7)
	return map[string]crypto.Signer{"ml-dsa-44 t1 = 0": zero44, "ml-dsa-65 t1 = 0": zero65,
		"ml-dsa-87 all zero": zero87, "P-256 G": g, "Ed25519 -7·B": b}
}

// TestWriterRefusesDegenerateKeys: the Writer will neither sign with a
// station key anyone can sign for nor record such a device, and a refused
// record leaves the manifest usable.
func TestWriterRefusesDegenerateKeys(t *testing.T) {
	station := newKey(t, sigalg.Ed25519)
	for name, key := range forgeableKeys(t) {
		if _, err := NewWriter(new(bytes.Buffer), Header{Batch: "weak"}, key); !errors.Is(err, sigalg.ErrWeakKey) {
			t.Errorf("%s as station key: NewWriter = %v, want ErrWeakKey", name, err)
		}
		var buf bytes.Buffer
		w, err := NewWriter(&buf, Header{Batch: "weak", Created: testTime}, station)
		if err != nil {
			t.Fatal(err)
		}
		bad := newDevice(t, key, Keygen, NotInjected, nil)
		if err := w.Add(context.Background(), bad.rec); !errors.Is(err, ErrMalformed) || !errors.Is(err, sigalg.ErrWeakKey) {
			t.Errorf("%s as device key: Add = %v, want ErrMalformed wrapping ErrWeakKey", name, err)
		}
		good := newDevice(t, newKey(t, sigalg.MLDSA44), Keygen, NotInjected, nil)
		if err := w.Add(context.Background(), good.rec); err != nil {
			t.Fatalf("after a refused record: %v", err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if sum, err := Verify(context.Background(), bytes.NewReader(buf.Bytes()), station.Public(), nil); err != nil || sum.Count != 1 {
			t.Errorf("manifest after a refused record: %d records, %v", sum.Count, err)
		}
	}
}

// TestVerifyRefusesDegenerateKeys: manifests made without the Writer, as
// an attacker holding a station's key (or a station of a degenerate key)
// would, and correctly signed: a device record or the header's station
// key that anyone can sign for is refused, and no record reaches fn.
func TestVerifyRefusesDegenerateKeys(t *testing.T) {
	station := newKey(t, sigalg.MLDSA65)
	for name, key := range forgeableKeys(t) {
		bad := newDevice(t, key, Keygen, NotInjected, nil)
		deviceManifest := signLines(t, station, headerLine(t, station), recordLine(t, station, 1, bad.rec))
		delivered := 0
		_, err := Verify(context.Background(), bytes.NewReader(deviceManifest), station.Public(), func(Record) error { delivered++; return nil })
		if !errors.Is(err, ErrMalformed) || !errors.Is(err, sigalg.ErrWeakKey) || delivered != 0 {
			t.Errorf("%s as device key: Verify = %v after %d records, want ErrMalformed wrapping ErrWeakKey and none", name, err, delivered)
		}

		good := newDevice(t, newKey(t, sigalg.ECDSAP256), Keygen, NotInjected, nil)
		stationManifest := signLines(t, key, headerLine(t, key), recordLine(t, key, 1, good.rec))
		for reader, read := range map[string]func() error{
			"Verify": func() error {
				_, err := Verify(context.Background(), bytes.NewReader(stationManifest), key.Public(), nil)
				return err
			},
			"Inspect": func() error {
				_, err := Inspect(context.Background(), bytes.NewReader(stationManifest), nil)
				return err
			},
		} {
			if err := read(); !errors.Is(err, sigalg.ErrWeakKey) {
				t.Errorf("%s as station key: %s = %v, want ErrWeakKey", name, reader, err)
			}
		}
	}
}
