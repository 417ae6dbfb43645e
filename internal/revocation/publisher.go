// Package revocation owns publishing revocation: it turns the registry's
// revoked certificates into what relying parties fetch without asking
// the platform anything else — the issuing CA's CRL, kept current by a
// Publisher (regenerated when told of a revocation, when the list
// changes, and at half of its validity) and served over plain HTTP with
// the OCSP responder beside it (NewMux). CRLs and OCSP answers are signed,
// so no TLS is needed; the URLs certificates carry come from
// pki.Config.RevocationBaseURL and follow the layout of pki.CRLPath,
// pki.OCSPPath and pki.CAIssuersPath.
package revocation

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// RevokedSource lists revoked certificates by expiry then serial, a page
// after the given cursor at a time, from a cut-off given as the first
// cursor: store.Lifecycle's method.
type RevokedSource interface {
	ListRevokedCertificates(ctx context.Context, after store.RevokedCursor, limit int) ([]store.RevokedCertificate, error)
}

// CRLSigner is the CA whose CRL a Publisher keeps: *pki.CA.
type CRLSigner interface {
	CRLName() string
	CreateCRL(ctx context.Context, req pki.CRLRequest) ([]byte, error)
	IssuingCertificate() *x509.Certificate
}

// Defaults of Config.
const (
	// DefaultValidity is nextUpdate − thisUpdate. A relying party that
	// cannot reach the platform keeps accepting the last CRL this long;
	// it is regenerated at half of it.
	DefaultValidity = 24 * time.Hour
	// DefaultPoll is how often Run re-reads the revoked certificates. It
	// bounds how late a replica that was not told of a revocation (the
	// revocation happened on another replica) publishes it.
	DefaultPoll = time.Minute
	// DefaultMaxAge caps the HTTP max-age of a CRL, so that a cache
	// serves a CRL at most this much older than a revocation published
	// since.
	DefaultMaxAge = time.Minute
	pageSize      = store.MaxRevokedPageSize
)

// Config configures a Publisher.
type Config struct {
	CA     CRLSigner
	Source RevokedSource
	// Validity, Poll and MaxAge default to DefaultValidity, DefaultPoll
	// and DefaultMaxAge.
	Validity, Poll, MaxAge time.Duration
	Log                    *slog.Logger
	Now                    func() time.Time
	// Certificates, when set, keeps the CRL to the certificates this CA
	// issued: the registry lists every CA's revocations together, so a
	// platform with several CAs (docs/pki.md, "Several CAs") looks up
	// each revoked serial once (GetCertificate, then remembered while it
	// is listed) to tell whose it is. Nil lists every revoked serial,
	// as a platform with one CA needs.
	Certificates CertificateStatusSource
}

// CRL is a published CRL. Its fields must not be modified.
type CRL struct {
	DER                    []byte
	Number                 *big.Int
	ThisUpdate, NextUpdate time.Time
	Entries                int
	// ETag is the strong HTTP entity tag of DER: the same bytes give the
	// same tag on every replica.
	ETag string
	// listed is the digest of the entries listed, so that an unchanged
	// list is not signed again before half of the validity.
	listed [32]byte
}

// Publisher keeps the issuing CA's CRL current. It is safe for concurrent
// use: Notify and Current never block on regeneration.
type Publisher struct {
	cfg       Config
	name      string
	issuerDER []byte
	notify    chan struct{}
	current   atomic.Pointer[CRL]
	// mu serialises regenerations, so numbers increase in the order
	// CRLs are published.
	mu         sync.Mutex
	lastNumber int64
	// ours remembers, per revoked serial still listed, whether this CA
	// issued it (Config.Certificates); guarded by mu.
	ours map[[16]byte]bool
}

// New returns a Publisher of cfg.CA's CRL. It publishes nothing until
// Refresh or Run.
func New(cfg Config) (*Publisher, error) {
	if cfg.CA == nil || cfg.Source == nil {
		return nil, errors.New("revocation: a CRL publisher needs a CA and a source of revoked certificates")
	}
	if cfg.Validity < 0 || cfg.Poll < 0 || cfg.MaxAge < 0 {
		return nil, errors.New("revocation: CRL validity, poll interval and max-age must not be negative")
	}
	if cfg.Validity == 0 {
		cfg.Validity = DefaultValidity
	}
	if cfg.Validity < 2*time.Second {
		return nil, fmt.Errorf("revocation: CRL validity %v is too short", cfg.Validity)
	}
	if cfg.Poll == 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	issuer := cfg.CA.IssuingCertificate()
	if issuer == nil {
		return nil, errors.New("revocation: the CA has no issuing certificate")
	}
	return &Publisher{cfg: cfg, name: cfg.CA.CRLName(), issuerDER: issuer.Raw, notify: make(chan struct{}, 1)}, nil
}

// Name is the CRL's name in URLs: pki.CRLPath + Name() + ".crl".
func (p *Publisher) Name() string { return p.name }

// Current is the CRL being served, nil before the first Refresh.
func (p *Publisher) Current() *CRL { return p.current.Load() }

// Notify tells the publisher that a certificate was revoked (or put on
// hold, or released): Run regenerates the CRL at once. It never blocks;
// notifications that arrive while one is pending or a CRL is being made
// coalesce into one regeneration, which reads the list after all of them.
func (p *Publisher) Notify() {
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

// Run keeps the CRL current until ctx ends: it refreshes at once, then on
// every Notify, every Poll, and when the CRL reaches half of its validity.
// A failed refresh is logged and retried at the next of these; the last
// CRL stays served meanwhile. It returns nil when ctx ends.
func (p *Publisher) Run(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.notify:
		case <-timer.C:
		}
		_, err := p.Refresh(ctx)
		if err != nil && ctx.Err() == nil {
			p.cfg.Log.Error("CRL not regenerated; the previous one is still served", "crl", p.name, "err", err)
		}
		timer.Reset(p.wait(err != nil))
	}
}

// wait is how long Run sleeps: until the next poll, or half of the
// current CRL's validity if that comes first; after a failure, a whole
// poll interval, so that a broken signer is not retried in a loop.
func (p *Publisher) wait(failed bool) time.Duration {
	d := p.cfg.Poll
	if c := p.Current(); c != nil && !failed {
		d = min(d, c.refreshAt(p.cfg.Validity).Sub(p.cfg.Now()))
	}
	return max(d, time.Second)
}

func (c *CRL) refreshAt(validity time.Duration) time.Time {
	return c.ThisUpdate.Add(validity / 2)
}

// Refresh reads the revoked certificates and, if the list changed or the
// current CRL has reached half of its validity, signs and publishes a new
// CRL. It returns the CRL served afterwards.
func (p *Publisher) Refresh(ctx context.Context) (*CRL, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.cfg.Now()
	entries, listed, err := p.collect(ctx, now)
	if err != nil {
		return p.Current(), err
	}
	if cur := p.Current(); cur != nil && cur.listed == listed && now.Before(cur.refreshAt(p.cfg.Validity)) {
		return cur, nil
	}
	start := time.Now()
	number := p.nextNumber(now)
	req := pki.CRLRequest{Number: big.NewInt(number), ThisUpdate: now, NextUpdate: now.Add(p.cfg.Validity), Entries: entries}
	der, err := p.cfg.CA.CreateCRL(ctx, req)
	if err != nil {
		return p.Current(), fmt.Errorf("CRL %s: %w", p.name, err)
	}
	p.lastNumber = number
	sum := sha256.Sum256(der)
	crl := &CRL{DER: der, Number: req.Number, Entries: len(entries), listed: listed,
		// As encoded: whole seconds, so Last-Modified matches thisUpdate.
		ThisUpdate: now.UTC().Truncate(time.Second), NextUpdate: req.NextUpdate.UTC().Truncate(time.Second),
		ETag: `"` + hex.EncodeToString(sum[:16]) + `"`}
	p.current.Store(crl)
	p.cfg.Log.Info("CRL published", "crl", p.name, "number", number, "entries", len(entries),
		"bytes", len(der), "took", time.Since(start).Round(time.Millisecond))
	return crl, nil
}

// nextNumber is the CRL number of a CRL made at now: its Unix time in
// milliseconds, or one more than the last number if that is not larger.
// Time makes numbers increase across restarts and across replicas that
// share nothing but the store, as long as clocks do not step back by
// more than the time between two CRLs (NTP keeps replicas within
// milliseconds; CRLs are seconds apart at the least). The guard keeps them
// strictly increasing within a process whatever its clock does.
func (p *Publisher) nextNumber(now time.Time) int64 {
	return max(now.UnixMilli(), p.lastNumber+1)
}

// collect reads the revoked certificates, page by page until an empty
// one (a source may cap pages below what is asked), keeping those
// revoked by now (a revocation dated later is not in force yet, and
// CreateCRL refuses it) whose certificate has not been expired for a
// whole CRL validity, and returns them with their digest.
//
// RFC 5280 5.1.2.6 lets an entry go once it has appeared on one regularly
// scheduled CRL issued after the certificate expired; CRLs are issued at
// least every half validity, so keeping an entry for one validity past
// expiry puts it on at least one. Without this every renewal (its
// superseded certificate revoked) would grow the CRL for good. The
// cut-off is the first cursor, so the store's index skips the
// long-expired entries rather than the read scanning them; the check
// below only guards against a source that lists more.
func (p *Publisher) collect(ctx context.Context, now time.Time) ([]pki.CRLEntry, [32]byte, error) {
	var entries []pki.CRLEntry
	h := sha256.New()
	cutoff := now.Add(-p.cfg.Validity)
	ours := map[[16]byte]bool{}
	after := store.RevokedCursor{NotAfter: cutoff}
	for {
		page, err := p.cfg.Source.ListRevokedCertificates(ctx, after, pageSize)
		if err != nil {
			return nil, [32]byte{}, fmt.Errorf("list revoked certificates: %w", err)
		}
		for _, rc := range page {
			if rc.RevokedAt.After(now) || !rc.NotAfter.After(cutoff) {
				continue
			}
			if p.cfg.Certificates != nil {
				mine, err := p.issuedHere(ctx, rc.Serial)
				if err != nil {
					return nil, [32]byte{}, err
				}
				if ours[rc.Serial] = mine; !mine {
					continue
				}
			}
			entries = append(entries, pki.CRLEntry{Serial: rc.Serial, RevokedAt: rc.RevokedAt, Reason: rc.Reason})
			var rec [16 + 8 + 8]byte
			copy(rec[:], rc.Serial[:])
			binary.BigEndian.PutUint64(rec[16:], uint64(rc.RevokedAt.UnixNano()))
			binary.BigEndian.PutUint64(rec[24:], uint64(rc.Reason))
			h.Write(rec[:])
		}
		if len(page) == 0 {
			break
		}
		next := page[len(page)-1].Cursor()
		if !after.Before(next) {
			return nil, [32]byte{}, errors.New("list revoked certificates: the source went back in its pages")
		}
		after = next
	}
	var sum [32]byte
	h.Sum(sum[:0])
	p.ours = ours // what is no longer listed is forgotten
	return entries, sum, nil
}

// issuedHere reports whether this CA issued the certificate serial,
// remembered from the last collect or looked up in the registry.
func (p *Publisher) issuedHere(ctx context.Context, serial [16]byte) (bool, error) {
	if mine, ok := p.ours[serial]; ok {
		return mine, nil
	}
	c, err := p.cfg.Certificates.GetCertificate(ctx, serial)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("certificate %x: %w", serial, err)
	}
	return issuedBy(c.DER, p.cfg.CA.IssuingCertificate()), nil
}
