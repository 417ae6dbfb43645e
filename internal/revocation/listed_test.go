package revocation

import (
	"context"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/pki"
)

// Listed names the revoked and held certificates not yet expired, read in
// pages however the source caps them, and keeps its last list when a
// read fails.
func TestListed(t *testing.T) {
	t.Parallel()
	src := &memSource{pageCap: 2}
	for i := byte(1); i <= 5; i++ {
		src.add(i, testNow.Add(-time.Hour), pki.ReasonKeyCompromise)
	}
	src.addExpiring(9, testNow.Add(-48*time.Hour), pki.ReasonCertificateHold, testNow.Add(-time.Hour)) // expired
	l, err := NewListed(src, func() time.Time { return testNow }, nil)
	if err != nil {
		t.Fatal(err)
	}
	serial := func(b byte) [16]byte { var s [16]byte; s[0], s[15] = 0x40, b; return s }
	if l.Contains(serial(1)) {
		t.Error("a serial listed before the first read")
	}
	if err := l.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if l.Len() != 5 {
		t.Errorf("Len %d, want 5", l.Len())
	}
	for i := byte(1); i <= 5; i++ {
		if !l.Contains(serial(i)) {
			t.Errorf("serial %d not listed", i)
		}
	}
	s1 := serial(1)
	if !l.ContainsCertificate(new(big.Int).SetBytes(s1[:])) {
		t.Error("ContainsCertificate of a listed serial is false")
	}
	for _, bad := range []*big.Int{nil, big.NewInt(0), big.NewInt(-1), new(big.Int).Lsh(big.NewInt(1), 130)} {
		if l.ContainsCertificate(bad) {
			t.Errorf("ContainsCertificate(%v) is true", bad)
		}
	}
	if l.Contains(serial(9)) || l.Contains(serial(6)) {
		t.Error("an expired or unknown serial is listed")
	}
	src.mu.Lock()
	src.err = errors.New("store down")
	src.mu.Unlock()
	if err := l.Refresh(context.Background()); err == nil {
		t.Fatal("Refresh over a failing source succeeded")
	}
	if !l.Contains(serial(3)) {
		t.Error("a failed read lost the last list")
	}
}
