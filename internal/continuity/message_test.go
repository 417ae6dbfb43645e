package continuity

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/sigalg/sigalgtest"
)

// TestMessageLayout pins the byte layout docs/migration.md specifies, so a
// device written in another language can be built from the document.
func TestMessageLayout(t *testing.T) {
	ch := Challenge{Nonce: []byte{0xaa, 0xbb}, ServerName: "h"}
	for i := range ch.ID {
		ch.ID[i] = byte(i)
	}
	p := &Proof{OldAlgorithm: "ed25519", NewAlgorithm: "ml-dsa-65", NewPublicKey: []byte{0xcc}}
	p.OldIdentity[0], p.NewIdentity[0] = 0x01, 0x02
	zeros31 := strings.Repeat("00", 31)
	transcriptHex := "0010" + "000102030405060708090a0b0c0d0e0f" + // challenge ID
		"0002" + "aabb" + // nonce
		"0001" + "68" + // server name "h"
		"0007" + hex.EncodeToString([]byte("ed25519")) +
		"0020" + "01" + zeros31 + // old identity
		"0009" + hex.EncodeToString([]byte("ml-dsa-65")) +
		"0020" + "02" + zeros31 + // new identity
		"0001" + "cc" // new SPKI
	tLen := len(transcriptHex) / 2
	for _, tc := range []struct {
		r       role
		context string
		signer  string
	}{
		{roleOld, OldKeyContext, "01" + zeros31},
		{roleNew, NewKeyContext, "02" + zeros31},
	} {
		want := hex.EncodeToString([]byte(tc.context)) + "00" + hex.EncodeToString([]byte{byte(tLen >> 8), byte(tLen)}) +
			transcriptHex + tc.signer
		if got := hex.EncodeToString(message(tc.r, ch, p)); got != want {
			t.Errorf("%s message\n got %s\nwant %s", tc.context, got, want)
		}
	}
}

// TestDocumentedExampleSize checks the worked example of docs/migration.md:
// ECDSA P-256 → ML-DSA-65, a 32-byte nonce, "hallmark.example".
func TestDocumentedExampleSize(t *testing.T) {
	oldKey := sigalgtest.DeriveNamed(t, sigalg.ECDSAP256, "doc old", 0)
	newKey := sigalgtest.DeriveNamed(t, sigalg.MLDSA65, "doc new", 0)
	ch := Challenge{ID: [16]byte{1}, Nonce: make([]byte, 32), ServerName: "hallmark.example"}
	p, err := Sign(ch, oldKey, newKey)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(transcript(ch, p)); n != 2137 {
		t.Errorf("transcript of %d bytes, the document says 2,137", n)
	}
	for _, r := range []role{roleOld, roleNew} {
		if n := len(message(r, ch, p)); n != 2208 {
			t.Errorf("message of %d bytes, the document says 2,208", n)
		}
	}
}

// TestForeignSignaturesRefused: a signature the old key made for another
// purpose — onboarding, the factory's proof of possession, the other role —
// is not a continuity signature, even over the same transcript.
func TestForeignSignaturesRefused(t *testing.T) {
	oldKey := sigalgtest.DeriveNamed(t, sigalg.ECDSAP256, "foreign old", 0)
	newKey := sigalgtest.DeriveNamed(t, sigalg.MLDSA65, "foreign new", 0)
	ch := Challenge{ID: [16]byte{1}, Nonce: bytes.Repeat([]byte{7}, onboarding.NonceSize), ServerName: "hallmark.example"}
	p, err := Sign(ch, oldKey, newKey)
	if err != nil {
		t.Fatal(err)
	}
	oldSPKI, _ := sigalg.MarshalPublicKey(oldKey.Public())
	pred := Predecessor{Algorithm: sigalg.ECDSAP256, PublicKey: oldSPKI}
	if _, err := Verify(p, ch, pred, Policy{}); err != nil {
		t.Fatal(err)
	}
	t2 := transcript(ch, p)
	foreign := map[string][]byte{
		"onboarding proof for this challenge, the new key as CSR": onboarding.ProofMessage(ch.ID, ch.Nonce, ch.ServerName, p.NewPublicKey, p.OldIdentity),
		"onboarding context over the continuity transcript":       identity.ProofMessage(onboarding.ProofContext, t2, p.OldIdentity),
		"factory context over the continuity transcript":          identity.ProofMessage(identity.FactoryProofContext, t2, p.OldIdentity),
		"the new key's role":  message(roleNew, ch, p),
		"the bare transcript": t2,
	}
	for name, msg := range foreign {
		t.Run(name, func(t *testing.T) {
			sig, err := sigalg.Sign(oldKey, msg)
			if err != nil {
				t.Fatal(err)
			}
			q := *p
			q.OldSignature = sig
			if _, err := Verify(&q, ch, pred, Policy{}); !errors.Is(err, ErrOldSignature) {
				t.Fatalf("err = %v, want ErrOldSignature", err)
			}
		})
	}
	t.Run("the new key signing the old key's role", func(t *testing.T) {
		sig, err := sigalg.Sign(newKey, message(roleOld, ch, p))
		if err != nil {
			t.Fatal(err)
		}
		q := *p
		q.NewSignature = sig
		if _, err := Verify(&q, ch, pred, Policy{}); !errors.Is(err, ErrNewSignature) {
			t.Fatalf("err = %v, want ErrNewSignature", err)
		}
	})
}

// TestTranscriptFitsLengths: at every limit the transcript's lengths and
// the whole transcript fit their u16 prefixes, so message never truncates.
func TestTranscriptFitsLengths(t *testing.T) {
	ch := Challenge{ID: [16]byte{1}, Nonce: make([]byte, MaxNonce), ServerName: strings.Repeat("a", MaxServerName)}
	p := &Proof{OldAlgorithm: sigalg.MLDSA87, NewAlgorithm: sigalg.MLDSA87, NewPublicKey: make([]byte, MaxPublicKey)}
	if n := len(transcript(ch, p)); n > 0xffff {
		t.Fatalf("transcript of %d bytes at the limits", n)
	}
	key := sigalgtest.DeriveNamed(t, sigalg.MLDSA87, "limit", 0)
	spki, err := sigalg.MarshalPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	if len(spki) != MaxPublicKey {
		t.Fatalf("ML-DSA-87 SPKI is %d bytes, MaxPublicKey %d", len(spki), MaxPublicKey)
	}
	if s := sigalgtest.Suite(t, sigalg.MLDSA87).SignatureSize(); s != MaxSignature {
		t.Fatalf("ML-DSA-87 signature is %d bytes, MaxSignature %d", s, MaxSignature)
	}
}
