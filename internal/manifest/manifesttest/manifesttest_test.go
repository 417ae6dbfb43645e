package manifesttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// TestForgeMatchesWriter: for honest records Forge writes the very bytes
// manifest.Writer writes, so what it sends differs from a real manifest
// only where a test makes it differ.
func TestForgeMatchesWriter(t *testing.T) {
	ed, _ := sigalg.Ed25519.Suite()
	station, _ := ed.GenerateKey(rand.Reader)
	created := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	var recs []manifest.Record
	for _, id := range []sigalg.ID{sigalg.ECDSAP256, sigalg.MLDSA44} {
		suite, _ := id.Suite()
		key, _ := suite.GenerateKey(rand.Reader)
		devID, _ := identity.FromPublicKey(key.Public())
		nonce := make([]byte, 32)
		rand.Read(nonce)
		proof, _ := suite.Sign(key, identity.ProofMessage(identity.FactoryProofContext, nonce, devID))
		recs = append(recs, manifest.Record{Identity: devID, Algorithm: id, PublicKey: key.Public(), RootOfTrust: manifest.Keygen,
			Injection: manifest.NotInjected, Time: created, Nonce: nonce, Proof: proof})
	}
	var buf bytes.Buffer
	w, err := manifest.NewWriter(&buf, manifest.Header{Batch: "b", Created: created}, station)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := w.Add(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	forged, err := Forge(station, "b", created, recs)
	if err != nil {
		t.Fatal(err)
	}
	// Ed25519 signatures are deterministic: the trailers agree too.
	if !bytes.Equal(forged, buf.Bytes()) {
		t.Fatalf("Forge wrote\n%s\nWriter wrote\n%s", forged, buf.Bytes())
	}
	if _, err := manifest.Verify(context.Background(), bytes.NewReader(forged), station.Public(), nil); err != nil {
		t.Fatal(err)
	}
}
