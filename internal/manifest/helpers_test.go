package manifest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

var testTime = time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)

func mustSuite(t testing.TB, id sigalg.ID) sigalg.Suite {
	t.Helper()
	s, err := id.Suite()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// deriveKey makes the key of suite id from a seed of one repeated byte, so
// that tests and the golden file are reproducible.
func deriveKey(t testing.TB, id sigalg.ID, seedByte byte) crypto.Signer {
	t.Helper()
	key, err := mustSuite(t, id).DeriveKey(bytes.Repeat([]byte{seedByte}, sigalg.SeedSize))
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func newKey(t testing.TB, id sigalg.ID) crypto.Signer {
	t.Helper()
	key, err := mustSuite(t, id).GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// device is a device key with what the station learnt from it.
type device struct {
	key crypto.Signer
	rec Record
}

// newDevice makes the record a station would write for key: the device
// signs a proof of possession over nonce.
func newDevice(t testing.TB, key crypto.Signer, rot RootOfTrust, inj Injection, nonce []byte) device {
	t.Helper()
	id, err := identity.FromPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	suite, _ := sigalg.SuiteOf(key)
	if nonce == nil {
		nonce = make([]byte, 32)
		rand.Read(nonce)
	}
	proof, err := suite.Sign(key, identity.ProofMessage(identity.FactoryProofContext, nonce, id))
	if err != nil {
		t.Fatal(err)
	}
	return device{key: key, rec: Record{
		Identity: id, Algorithm: suite.ID(), PublicKey: key.Public(),
		RootOfTrust: rot, Injection: inj, Time: testTime, Nonce: nonce, Proof: proof,
	}}
}

func writeManifest(t testing.TB, station crypto.Signer, batch string, recs ...Record) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{Batch: batch, Created: testTime}, station)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		if err := w.Add(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// signLines makes a manifest from arbitrary lines with a correct trailer:
// what a station that does not use Writer, or a compromised one, could
// sign. It isolates the reader's checks from the signature check.
func signLines(t testing.TB, station crypto.Signer, lines ...[]byte) []byte {
	t.Helper()
	body := bytes.Join(lines, nil)
	digest := sha256.Sum256(body)
	sig, err := sigalg.Sign(station, signedMessage(digest))
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for _, l := range lines[1:] {
		if !bytes.HasPrefix(l, trailerPrefix) {
			count++
		}
	}
	trailer, err := encodeLine(wireTrailer{Count: uint64(count), Digest: hex.EncodeToString(digest[:]), Signature: encodeBase64(sig)})
	if err != nil {
		t.Fatal(err)
	}
	return append(body, trailer...)
}

// headerLine is the canonical header for station.
func headerLine(t testing.TB, station crypto.Signer) []byte {
	t.Helper()
	spki, _ := sigalg.MarshalPublicKey(station.Public())
	suite, _ := sigalg.SuiteOf(station)
	h := Header{Batch: "B1", Created: testTime, Station: identity.FromSPKI(spki), StationAlgorithm: suite.ID()}
	line, err := encodeLine(h.toWire(spki))
	if err != nil {
		t.Fatal(err)
	}
	return line
}

// recordLine is the canonical line of rec, which is filled in for station
// and position seq but not checked.
func recordLine(t testing.TB, station crypto.Signer, seq uint64, rec Record) []byte {
	t.Helper()
	spki, _ := sigalg.MarshalPublicKey(station.Public())
	rec.Seq, rec.Station = seq, identity.FromSPKI(spki)
	if rec.SPKI == nil {
		rec.SPKI, _ = sigalg.MarshalPublicKey(rec.PublicKey)
	}
	line, err := encodeLine(rec.toWire())
	if err != nil {
		t.Fatal(err)
	}
	return line
}

// splitLines splits a manifest after each newline.
func splitLines(data []byte) [][]byte {
	parts := bytes.SplitAfter(data, []byte("\n"))
	if len(parts) > 0 && len(parts[len(parts)-1]) == 0 {
		parts = parts[:len(parts)-1]
	}
	return parts
}

func verifyAll(data []byte, station crypto.PublicKey) ([]Record, Summary, error) {
	var got []Record
	sum, err := Verify(context.Background(), bytes.NewReader(data), station, func(r Record) error {
		got = append(got, r)
		return nil
	})
	return got, sum, err
}
