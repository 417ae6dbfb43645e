package revocation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hallmark-iot/hallmark/internal/store"
)

// Listed is the serials of the certificates that are revoked or on hold
// and not expired, of every CA, in memory: what a hot path asks instead
// of the registry to find the few certificates that need a closer look
// (the campaign service's poll, docs/ota.md, "Polling"). It is a filter,
// never the authority: a serial listed here is checked against the
// registry by whoever refuses it, and one revoked since the last Refresh
// is missed until the next (Run's interval, the CRL's own bound between
// replicas). It is safe for concurrent use.
type Listed struct {
	src    RevokedSource
	now    func() time.Time
	log    *slog.Logger
	mu     sync.Mutex // serialises refreshes
	set    atomic.Pointer[map[[16]byte]struct{}]
	notify chan struct{}
}

// NewListed returns an empty Listed of src's revoked certificates; it
// lists nothing until Refresh or Run.
func NewListed(src RevokedSource, now func() time.Time, log *slog.Logger) (*Listed, error) {
	if src == nil {
		return nil, errors.New("revocation: a revoked list needs a source of revoked certificates")
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Listed{src: src, now: now, log: log, notify: make(chan struct{}, 1)}, nil
}

// Notify tells Run that a certificate was revoked, put on hold or
// released: it reads the list again at once. It never blocks;
// notifications that arrive while one is pending coalesce.
func (l *Listed) Notify() {
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

// Contains reports whether the certificate with serial (16 bytes,
// big-endian, as the registry keeps it) was revoked or on hold at the
// last Refresh.
func (l *Listed) Contains(serial [16]byte) bool {
	set := l.set.Load()
	if set == nil {
		return false
	}
	_, ok := (*set)[serial]
	return ok
}

// ContainsCertificate is Contains of a certificate's serial number; a
// serial the registry cannot hold (not positive, over 16 bytes) is not
// listed.
func (l *Listed) ContainsCertificate(serial *big.Int) bool {
	var s [16]byte
	if serial == nil || serial.Sign() <= 0 || len(serial.Bytes()) > len(s) {
		return false
	}
	serial.FillBytes(s[:])
	return l.Contains(s)
}

// Len is how many serials the last Refresh listed.
func (l *Listed) Len() int {
	if set := l.set.Load(); set != nil {
		return len(*set)
	}
	return 0
}

// Refresh reads the revoked certificates that have not expired (an
// expired certificate fails the TLS handshake before anything asks),
// page by page, and replaces the set.
func (l *Listed) Refresh(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	set := make(map[[16]byte]struct{}, l.Len())
	after := store.RevokedCursor{NotAfter: l.now()}
	for {
		page, err := l.src.ListRevokedCertificates(ctx, after, pageSize)
		if err != nil {
			return fmt.Errorf("revocation: list revoked certificates: %w", err)
		}
		if len(page) == 0 {
			break
		}
		for _, rc := range page {
			set[rc.Serial] = struct{}{}
		}
		next := page[len(page)-1].Cursor()
		if !after.Before(next) {
			return errors.New("revocation: list revoked certificates: the source went back in its pages")
		}
		after = next
	}
	l.set.Store(&set)
	return nil
}

// notifyGapFactor bounds the share of a core a stream of Notify calls can
// take: after a refresh that took d, the next one a Notify asks for waits
// until notifyGapFactor×d (at least minNotifyGap) have passed since it.
// A refresh reads every revoked certificate, and a migration campaign
// revokes one device's old certificates per migration, dozens a second:
// refreshing on each would keep a core busy re-reading a list that grows
// with the fleet (a campaign of 100,000 spent 45 % of the server's CPU
// so). A Notify is never lost, only delayed.
const (
	notifyGapFactor = 20
	minNotifyGap    = time.Second
)

// Run refreshes the set at once, then every every and on Notify (at most
// one refresh per notifyGapFactor times the last one's duration), until
// ctx ends; a failed refresh is logged and the last set kept. It returns
// nil when ctx ends.
func (l *Listed) Run(ctx context.Context, every time.Duration) error {
	if every <= 0 {
		every = DefaultPoll
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		start := time.Now()
		if err := l.Refresh(ctx); err != nil && ctx.Err() == nil {
			l.log.Warn("revoked certificates not re-read; the last list is kept", "error", err)
		}
		gap := max(minNotifyGap, notifyGapFactor*time.Since(start))
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-l.notify:
			wait := time.NewTimer(gap - time.Since(start))
			select {
			case <-ctx.Done():
				wait.Stop()
				return nil
			case <-t.C:
				wait.Stop()
			case <-wait.C:
			}
		}
	}
}
