package pki

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// forget drops what ca remembers of verifications.
func forget(ca *CA) {
	ca.verified.mu.Lock()
	defer ca.verified.mu.Unlock()
	ca.verified.cur, ca.verified.older = nil, nil
}

func remembered(ca *CA) int {
	ca.verified.mu.Lock()
	defer ca.verified.mu.Unlock()
	return len(ca.verified.cur) + len(ca.verified.older)
}

// A device chain verified once is answered from memory, but only inside
// the window where its whole path is valid: the second answer is the same
// leaf, and outside the window the full check runs and refuses it.
func TestVerifyDeviceRemembersInsideValidity(t *testing.T) {
	t.Parallel()
	tc := newTestCA(t, sigalg.MLDSA65)
	iss := issueDevice(t, tc.CA, deviceKey(t, sigalg.ECDSAP256, "remember").Public(), "remember")
	first, id, err := tc.VerifyDevice([][]byte{iss.DER}, testNow)
	if err != nil || id != testIdentity("remember") {
		t.Fatalf("VerifyDevice = %v, %v", id, err)
	}
	again, id2, err := tc.VerifyDevice([][]byte{iss.DER}, testNow.Add(time.Minute))
	if err != nil || id2 != id || again != first {
		t.Fatalf("second VerifyDevice = %p %v, %v; want the remembered %p", again, id2, err, first)
	}
	for name, at := range map[string]time.Time{
		"after the leaf expired": first.NotAfter.Add(time.Second),
		"before it is valid":     first.NotBefore.Add(-time.Second),
	} {
		if _, _, err := tc.VerifyDevice([][]byte{iss.DER}, at); !errors.Is(err, ErrExpired) {
			t.Errorf("%s: VerifyDevice = %v, want ErrExpired", name, err)
		}
	}
}

// An attacker's certificate that fails verification is refused every
// time and never remembered; a genuine leaf remembered by one CA is
// nothing to another CA.
func TestVerifyDeviceRemembersOnlySuccesses(t *testing.T) {
	t.Parallel()
	tc := newTestCA(t, sigalg.ECDSAP256)
	other := newTestCA(t, sigalg.ECDSAP256)
	genuine := issueDevice(t, tc.CA, deviceKey(t, sigalg.ECDSAP256, "genuine").Public(), "genuine")
	// The genuine certificate's contents, signed by another CA's key:
	// same issuer name and key identifier, wrong signature.
	forged := resign(t, genuine.DER, other.signer(t, KeyIssuing), func(*tbsCertificate) {})
	for range 2 {
		if _, _, err := tc.VerifyDevice([][]byte{forged}, testNow); !errors.Is(err, ErrUntrusted) {
			t.Fatalf("forged leaf: VerifyDevice = %v, want ErrUntrusted", err)
		}
	}
	if n := remembered(tc.CA); n != 0 {
		t.Fatalf("%d verifications remembered after refusals", n)
	}
	if _, _, err := tc.VerifyDevice([][]byte{genuine.DER}, testNow); err != nil {
		t.Fatal(err)
	}
	if _, _, err := other.VerifyDevice([][]byte{genuine.DER}, testNow); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("another CA: VerifyDevice = %v, want ErrUntrusted", err)
	}
	if _, _, err := tc.VerifyDevice([][]byte{forged}, testNow); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("forged leaf after the genuine one: VerifyDevice = %v, want ErrUntrusted", err)
	}
}

// A set answers a leaf its CA remembers, and still refuses a leaf of no
// CA of the set.
func TestCASetVerifyDeviceRemembers(t *testing.T) {
	t.Parallel()
	set := openTestSet(t, t.TempDir(), sigalg.ECDSAP256, sigalg.ECDSAP256, sigalg.MLDSA65)
	pq := set.All()[1]
	key := deviceKey(t, sigalg.ECDSAP256, "set remember")
	id := identity.FromSPKI(mustSPKI(t, key.Public()))
	iss, err := pq.IssueDevice(context.Background(), DeviceRequest{Identity: id, PublicKey: key.Public(), Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	first, got, err := set.VerifyDevice([][]byte{iss.DER}, testNow)
	if err != nil || got != id {
		t.Fatalf("VerifyDevice = %v, %v", got, err)
	}
	if remembered(pq) != 1 || remembered(set.First()) != 0 {
		t.Fatalf("remembered by the issuer %d, by the other CA %d", remembered(pq), remembered(set.First()))
	}
	if again, _, err := set.VerifyDevice([][]byte{iss.DER}, testNow); err != nil || again != first {
		t.Fatalf("second VerifyDevice = %p, %v; want the remembered %p", again, err, first)
	}
	if _, _, err := set.VerifyDevice([][]byte{iss.DER}, first.NotAfter.Add(time.Second)); !errors.Is(err, ErrExpired) {
		t.Fatalf("after expiry: VerifyDevice = %v, want ErrExpired", err)
	}
	foreign := newTestCA(t, sigalg.ECDSAP256)
	stranger := issueDevice(t, foreign.CA, deviceKey(t, sigalg.ECDSAP256, "stranger").Public(), "stranger")
	if _, _, err := set.VerifyDevice([][]byte{stranger.DER}, testNow); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("foreign leaf: VerifyDevice = %v, want ErrUntrusted", err)
	}
}

// Memory stays bounded however many devices come by.
func TestVerifiedCacheBounded(t *testing.T) {
	t.Parallel()
	var c verifiedCache
	key := func(i int) [sha256.Size]byte { return sha256.Sum256([]byte{byte(i), byte(i >> 8)}) }
	const puts = 3 * verifiedCacheSize
	for i := range puts {
		c.put(key(i), verifiedLeaf{notAfter: testNow.Add(time.Hour)})
		if n := len(c.cur) + len(c.older); n > verifiedCacheSize {
			t.Fatalf("%d entries after %d puts, bound %d", n, i+1, verifiedCacheSize)
		}
	}
	if _, ok := c.get(key(puts-1), testNow); !ok {
		t.Fatal("the latest entry is gone")
	}
	if _, ok := c.get(key(0), testNow); ok {
		t.Fatal("the first entry is still there")
	}
}
