package revocation

import (
	"context"
	"errors"
	"math/big"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/store"
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

// countingSource counts the reads that start a refresh (the first page).
type countingSource struct {
	*memSource
	refreshes atomic.Int64
}

func (c *countingSource) ListRevokedCertificates(ctx context.Context, after store.RevokedCursor, limit int) ([]store.RevokedCertificate, error) {
	if after.Serial == ([16]byte{}) {
		c.refreshes.Add(1)
	}
	return c.memSource.ListRevokedCertificates(ctx, after, limit)
}

// A burst of notifications (a migration campaign revokes certificates
// dozens of times a second) costs at most one refresh per gap, not one
// each; and the last notification is never lost: what it announced is
// listed once the gap has passed.
func TestListedNotifyBurstIsCoalesced(t *testing.T) {
	t.Parallel()
	src := &countingSource{memSource: &memSource{}}
	l, err := NewListed(src, func() time.Time { return testNow }, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = l.Run(ctx, time.Hour) }()
	defer func() { cancel(); <-done }()
	for src.refreshes.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	burst := time.Now()
	for i := range 200 {
		if i == 199 {
			src.add(7, testNow.Add(-time.Minute), pki.ReasonSuperseded)
		}
		l.Notify()
		time.Sleep(time.Millisecond)
	}
	// Within minNotifyGap of the first refresh at most one more can start.
	if n, within := src.refreshes.Load(), time.Since(burst) < minNotifyGap; within && n > 2 {
		t.Errorf("%d refreshes for a burst of 200 notifications within %v, want at most 2", n, minNotifyGap)
	}
	var s7 [16]byte
	s7[0], s7[15] = 0x40, 7
	deadline := time.Now().Add(30 * time.Second)
	for !l.Contains(s7) {
		if time.Now().After(deadline) {
			t.Fatal("the serial the last notification announced was never listed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := src.refreshes.Load(); n > 200/2 {
		t.Errorf("%d refreshes for 200 notifications", n)
	}
}
