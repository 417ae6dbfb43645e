// Package crlsync owns keeping a TLS server's certificate revocation list
// file current from the platform's CRL URL: it fetches the CRL (a
// conditional GET on its ETag), verifies it against the CA certificates
// the server trusts, refuses one older than the file's, writes it
// atomically as PEM and tells the server to read it again (SIGHUP to the
// process in a pid file for Mosquitto). `hallmark broker crl-sync` runs
// it beside a customer's broker; the demo and the tests use it as a
// library.
package crlsync

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/hallmark-iot/hallmark/internal/atomicfile"
	"github.com/hallmark-iot/hallmark/internal/pki"
)

// DefaultInterval is how often Run polls the CRL URL by default: it
// bounds the time from a revocation to the broker refusing the device.
const DefaultInterval = 30 * time.Second

// clockSkew is how far in the future a CRL's thisUpdate may be (the
// platform's clock ahead of this one) and still be accepted.
const clockSkew = 5 * time.Minute

// pemType is the PEM block type of a CRL (RFC 7468).
const pemType = "X509 CRL"

var (
	// ErrStale is a fetched CRL older than the one in the file: a CRL
	// number lower than the file's. A replayed old CRL could list fewer
	// devices, so it is never written.
	ErrStale = errors.New("CRL is older than the one in the file")
	// ErrNoIssuer is a CRL signed by none of the configured CAs.
	ErrNoIssuer = errors.New("CRL issuer is none of the configured CA certificates")
)

// Reloader makes the server read its CRL file again.
type Reloader interface {
	Reload() error
}

// Config configures a Syncer.
type Config struct {
	// URL is the CRL's http:// or https:// URL: the CRL Distribution
	// Point in device certificates, <revocation base URL>/crl/<name>.crl.
	URL string
	// Issuers are the CA certificates the server trusts (its cafile);
	// the CRL must be signed by one of them.
	Issuers []*x509.Certificate
	// File is the server's CRL file (Mosquitto's crlfile).
	File string
	// Reloader is told after every new CRL written; nil tells no one.
	Reloader Reloader
	// Interval is Run's polling interval; DefaultInterval if zero.
	Interval time.Duration
	// Client fetches the CRL; default a client with a 30s timeout.
	Client *http.Client
	// Log receives one line per new CRL and per failure; nil discards.
	Log *slog.Logger
	// Now is the clock; time.Now if nil.
	Now func() time.Time
}

// Result is what one Sync did.
type Result struct {
	// Changed reports that a new CRL was written and the server reloaded.
	Changed bool
	// Number and Entries describe the CRL now in the file.
	Number  *big.Int
	Entries int
	// NextUpdate is when the CRL in the file stops being current.
	NextUpdate time.Time
}

// Syncer keeps one CRL file current. Sync and Run must not be called
// concurrently.
type Syncer struct {
	cfg     Config
	etag    string
	current *pki.CRL // what the file holds, nil if unknown
	// reloadDue is a CRL written whose reload failed: the next Sync
	// reloads again, changed or not.
	reloadDue bool
}

// New checks cfg and reads the CRL already in cfg.File, if it verifies,
// as the floor below which no CRL is written. It does no network I/O.
func New(cfg Config) (*Syncer, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("crl-sync: CRL URL %q: want http://HOST/PATH", cfg.URL)
	}
	if len(cfg.Issuers) == 0 || cfg.File == "" {
		return nil, errors.New("crl-sync: need the CA certificates and the CRL file")
	}
	if cfg.Interval < 0 {
		return nil, errors.New("crl-sync: negative interval")
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Syncer{cfg: cfg}
	if data, err := os.ReadFile(cfg.File); err == nil {
		if block, _ := pem.Decode(data); block != nil && block.Type == pemType {
			// An unverifiable file is replaced by the first good CRL.
			s.current, _ = s.verify(block.Bytes)
		}
	}
	return s, nil
}

// Sync fetches the CRL once and, if it is new, verifies it, writes it and
// reloads the server. An error leaves the file as it was.
func (s *Syncer) Sync(ctx context.Context) (Result, error) {
	if s.reloadDue {
		if err := s.reload(); err != nil {
			return s.result(false), err
		}
	}
	der, notModified, err := s.fetch(ctx)
	if err != nil {
		return s.result(false), err
	}
	if notModified {
		return s.result(false), nil
	}
	crl, err := s.verify(der)
	if err != nil {
		s.etag = "" // fetch it whole next time
		return s.result(false), err
	}
	if s.current != nil {
		switch crl.Number.Cmp(s.current.Number) {
		case -1:
			s.etag = ""
			return s.result(false), fmt.Errorf("crl-sync: CRL number %s after %s: %w", crl.Number, s.current.Number, ErrStale)
		case 0:
			return s.result(false), nil
		}
	}
	if err := s.install(crl); err != nil {
		return s.result(false), err
	}
	s.cfg.Log.Info("new CRL installed", "number", crl.Number, "entries", len(crl.Entries), "next_update", crl.NextUpdate)
	return s.result(true), nil
}

func (s *Syncer) result(changed bool) Result {
	r := Result{Changed: changed}
	if s.current != nil {
		r.Number, r.Entries, r.NextUpdate = s.current.Number, len(s.current.Entries), s.current.NextUpdate
	}
	return r
}

// install writes crl as PEM in place of the file, atomically (the server
// reads either the old CRL or the new one), then reloads the server. A
// failed reload is reported and tried again at the next change, but the
// file is the new CRL: a restart of the server picks it up.
func (s *Syncer) install(crl *pki.CRL) error {
	data := pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: crl.Raw})
	if err := atomicfile.Write(s.cfg.File, data, 0o644); err != nil {
		return fmt.Errorf("crl-sync: write %s: %w", s.cfg.File, err)
	}
	s.current = crl
	return s.reload()
}

func (s *Syncer) reload() error {
	if s.cfg.Reloader == nil {
		return nil
	}
	if err := s.cfg.Reloader.Reload(); err != nil {
		s.reloadDue = true
		return fmt.Errorf("crl-sync: CRL written, reload failed: %w", err)
	}
	s.reloadDue = false
	return nil
}

// fetch GETs the CRL, conditionally on the last ETag.
func (s *Syncer) fetch(ctx context.Context) (der []byte, notModified bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.URL, nil)
	if err != nil {
		return nil, false, fmt.Errorf("crl-sync: %w", err)
	}
	// Caches on the way must ask the platform: a revocation must not wait
	// for a cached CRL's max-age.
	req.Header.Set("Cache-Control", "no-cache")
	if s.etag != "" && s.current != nil {
		req.Header.Set("If-None-Match", s.etag)
	}
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return nil, false, fmt.Errorf("crl-sync: fetch CRL: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		return nil, true, nil
	case http.StatusOK:
	default:
		return nil, false, fmt.Errorf("crl-sync: fetch CRL: %s", resp.Status)
	}
	der, err = io.ReadAll(io.LimitReader(resp.Body, pki.MaxCRLDER+1))
	if err != nil {
		return nil, false, fmt.Errorf("crl-sync: read CRL: %w", err)
	}
	if len(der) > pki.MaxCRLDER {
		return nil, false, fmt.Errorf("crl-sync: CRL larger than %d bytes", pki.MaxCRLDER)
	}
	s.etag = resp.Header.Get("ETag")
	return der, false, nil
}

// verify checks that der is a CRL signed by one of the configured CAs
// and current: a CRL past its nextUpdate would make the broker refuse
// every device, and one not yet valid too (beyond a little clock skew).
func (s *Syncer) verify(der []byte) (*pki.CRL, error) {
	parsed, err := pki.ParseCRL(der)
	if err != nil {
		return nil, fmt.Errorf("crl-sync: %w", err)
	}
	// Two CAs may share a name (a replaced issuing CA): each one named
	// like the CRL's issuer is tried.
	var crl *pki.CRL
	err = fmt.Errorf("crl-sync: %w", ErrNoIssuer)
	for _, c := range s.cfg.Issuers {
		if string(c.RawSubject) != string(parsed.RawIssuer) {
			continue
		}
		if crl, err = pki.VerifyCRL(der, c); err == nil {
			break
		}
		err = fmt.Errorf("crl-sync: %w", err)
	}
	if crl == nil {
		return nil, err
	}
	now := s.cfg.Now()
	if crl.ThisUpdate.After(now.Add(clockSkew)) {
		return nil, fmt.Errorf("crl-sync: CRL is not valid before %s (check the clocks): %w", crl.ThisUpdate.Format(time.RFC3339), pki.ErrExpired)
	}
	if now.After(crl.NextUpdate) {
		return nil, fmt.Errorf("crl-sync: CRL was due to be replaced at %s: %w", crl.NextUpdate.Format(time.RFC3339), pki.ErrExpired)
	}
	return crl, nil
}

// Run syncs at once and then every Interval until ctx ends; failures are
// logged and tried again at the next round. It returns ctx's error.
func (s *Syncer) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		if _, err := s.Sync(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Log.Warn("CRL sync failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
