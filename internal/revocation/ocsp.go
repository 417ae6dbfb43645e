package revocation

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// This file is the OCSP responder (RFC 6960) without its transport:
// OCSPResponder.Respond turns a DER request into a DER response. The HTTP
// binding is ocsphttp.go; the encoding and signing are pki's.

// CertificateStatusSource looks up a certificate the platform issued by
// its serial: store.Certificates' GetCertificate. An unknown serial is
// store.ErrNotFound.
type CertificateStatusSource interface {
	GetCertificate(ctx context.Context, serial [16]byte) (store.Certificate, error)
}

// OCSPIssuer is the CA a responder answers for: *pki.CA.
type OCSPIssuer interface {
	IssuingCertificate() *x509.Certificate
	IssueOCSPResponder(ctx context.Context, pub crypto.PublicKey, validity time.Duration) ([]byte, error)
}

// OCSPKeys holds the responder's key (pki.KeyOCSPResponder): the key
// manager that holds the CA's keys.
type OCSPKeys interface {
	CreateKey(ctx context.Context, req keys.CreateKeyRequest) (crypto.PublicKey, error)
	PublicKey(ctx context.Context, name string) (crypto.PublicKey, error)
	Signer(ctx context.Context, name string) (crypto.Signer, error)
}

// Defaults of OCSPConfig.
const (
	// DefaultOCSPResponderValidity is the delegated responder
	// certificate's lifetime; it is replaced when a third is left.
	DefaultOCSPResponderValidity = 7 * 24 * time.Hour
	// DefaultOCSPResponseValidity is nextUpdate − thisUpdate: how long a
	// client may rely on one answer.
	DefaultOCSPResponseValidity = time.Hour
	// DefaultOCSPCacheFor is how long the responder serves one signed
	// answer to requests without a nonce, and the max-age of a GET.
	DefaultOCSPCacheFor = time.Minute
	// maxOCSPCacheEntries bounds the cache: 4,096 answers of at most a
	// few KiB each (ML-DSA-87 with its certificate: 12 KiB).
	maxOCSPCacheEntries = 4096
)

// OCSPConfig configures NewOCSPResponder.
type OCSPConfig struct {
	CA           OCSPIssuer
	Keys         OCSPKeys
	Certificates CertificateStatusSource
	// ResponderValidity, ResponseValidity and CacheFor default to the
	// DefaultOCSP… constants. CacheFor must not exceed ResponseValidity.
	ResponderValidity, ResponseValidity, CacheFor time.Duration
	// Now is the clock (time.Now if nil).
	Now    func() time.Time
	Logger *slog.Logger
	// KeyName is the responder key's name in Keys (pki.KeyOCSPResponder
	// if empty: CA.KeyName of it for a further CA of a set, so that each
	// CA's responder has a key of its own).
	KeyName string
	// Path is where the responder is served (pki.OCSPPath if empty;
	// CA.OCSPPath): a GET request is read from what follows it.
	Path string
}

func (c OCSPConfig) withDefaults() (OCSPConfig, error) {
	if c.CA == nil || c.Keys == nil || c.Certificates == nil {
		return c, errors.New("OCSP responder: CA, Keys and Certificates are required")
	}
	if c.ResponderValidity == 0 {
		c.ResponderValidity = DefaultOCSPResponderValidity
	}
	if c.ResponseValidity == 0 {
		c.ResponseValidity = DefaultOCSPResponseValidity
	}
	if c.CacheFor == 0 {
		c.CacheFor = DefaultOCSPCacheFor
	}
	switch {
	case c.ResponderValidity < 0 || c.ResponderValidity > pki.MaxOCSPResponderValidity:
		return c, fmt.Errorf("OCSP responder: responder validity %v, want up to %v", c.ResponderValidity, pki.MaxOCSPResponderValidity)
	case c.ResponseValidity < 0 || c.CacheFor < 0 || c.CacheFor > c.ResponseValidity:
		return c, fmt.Errorf("OCSP responder: cache time %v must lie within the response validity %v", c.CacheFor, c.ResponseValidity)
	case c.ResponseValidity > c.ResponderValidity/3:
		// The responder certificate is replaced with a third of its
		// life left; every answer must expire before it does.
		return c, fmt.Errorf("OCSP responder: response validity %v exceeds a third of the responder's %v", c.ResponseValidity, c.ResponderValidity)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.KeyName == "" {
		c.KeyName = pki.KeyOCSPResponder
	}
	if c.Path == "" {
		c.Path = pki.OCSPPath
	}
	if !strings.HasPrefix(c.Path, pki.OCSPPath) {
		return c, fmt.Errorf("OCSP responder: path %q outside %s", c.Path, pki.OCSPPath)
	}
	return c, nil
}

// OCSPResponder answers OCSP requests about the certificates of one
// issuing CA, signed by a delegated responder certificate it issues
// itself and renews before it expires. It is safe for concurrent use.
type OCSPResponder struct {
	cfg    OCSPConfig
	issuer *x509.Certificate
	key    crypto.Signer
	signer atomic.Pointer[pki.OCSPSigner]
	// renewMu serialises renewals of the responder certificate.
	renewMu sync.Mutex
	cache   ocspCache
}

// NewOCSPResponder creates the responder's key in cfg.Keys if it does not
// exist yet (of the CA's suite), and issues the responder certificate.
// The certificate is not stored: a new one is issued at every start.
func NewOCSPResponder(ctx context.Context, cfg OCSPConfig) (*OCSPResponder, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &OCSPResponder{cfg: cfg, issuer: cfg.CA.IssuingCertificate()}
	r.cache.entries = map[string]ocspCacheEntry{}
	if r.key, err = responderKey(ctx, cfg.Keys, cfg.KeyName, r.issuer); err != nil {
		return nil, err
	}
	if _, err := r.renew(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// responderKey returns the responder's signer, creating the key with the
// CA's suite on first use. An existing key is taken whatever its suite.
func responderKey(ctx context.Context, km OCSPKeys, name string, issuer *x509.Certificate) (crypto.Signer, error) {
	suite, err := sigalg.SuiteOf(issuer.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("OCSP responder: issuing CA key: %w", err)
	}
	_, err = km.CreateKey(ctx, keys.CreateKeyRequest{Name: name, Suite: suite.ID()})
	if err != nil && !errors.Is(err, keys.ErrExists) {
		return nil, fmt.Errorf("OCSP responder key: %w", err)
	}
	signer, err := km.Signer(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("OCSP responder key: %w", err)
	}
	return signer, nil
}

// renew issues a new responder certificate and makes it current.
func (r *OCSPResponder) renew(ctx context.Context) (*pki.OCSPSigner, error) {
	der, err := r.cfg.CA.IssueOCSPResponder(ctx, r.key.Public(), r.cfg.ResponderValidity)
	if err != nil {
		return nil, fmt.Errorf("OCSP responder certificate: %w", err)
	}
	s, err := pki.NewOCSPSigner(r.issuer.Raw, der, r.key)
	if err != nil {
		return nil, fmt.Errorf("OCSP responder certificate: %w", err)
	}
	r.signer.Store(s)
	r.cfg.Logger.Info("OCSP responder certificate issued", "not_after", s.NotAfter())
	return s, nil
}

// currentSigner returns the responder's signer, renewing its certificate
// once a third of its validity is left. A failed renewal keeps the old
// certificate while it is valid, and retries at the next request.
func (r *OCSPResponder) currentSigner(ctx context.Context, now time.Time) (*pki.OCSPSigner, error) {
	s := r.signer.Load()
	if now.Before(s.NotAfter().Add(-r.cfg.ResponderValidity / 3)) {
		return s, nil
	}
	r.renewMu.Lock()
	defer r.renewMu.Unlock()
	if s = r.signer.Load(); now.Before(s.NotAfter().Add(-r.cfg.ResponderValidity / 3)) {
		return s, nil // another request renewed it
	}
	fresh, err := r.renew(ctx)
	if err == nil {
		// Answers cached under the old certificate stay valid: it
		// signed them and is still within its validity.
		return fresh, nil
	}
	if now.Before(s.NotAfter()) {
		r.cfg.Logger.Warn("OCSP responder certificate renewal failed; keeping the current one", "err", err, "not_after", s.NotAfter())
		return s, nil
	}
	return nil, err
}

// Issuer is the certificate of the CA the responder answers for.
func (r *OCSPResponder) Issuer() *x509.Certificate { return r.issuer }

// Purge forgets every cached answer, so that the next request without a
// nonce sees a revocation at once. Call it after revoking.
func (r *OCSPResponder) Purge() { r.cache.purge() }

// OCSPAnswer is a DER OCSPResponse and what the transport needs to know
// about it.
type OCSPAnswer struct {
	DER    []byte
	Status pki.OCSPResponseStatus
	// Fresh is true for an answer signed for this request (a nonce was
	// asked for); such an answer must not be cached.
	Fresh bool
	// ThisUpdate and CacheUntil are set for a successful answer without
	// a nonce: when it was signed, and until when it is served as is.
	ThisUpdate, CacheUntil time.Time
}

// Respond answers one DER OCSPRequest. Whatever goes wrong, the answer is
// an OCSPResponse: malformedRequest for a request that does not parse,
// unauthorized for a CertID of another issuer, tryLater when the registry
// cannot be read, internalError when signing fails.
func (r *OCSPResponder) Respond(ctx context.Context, der []byte) OCSPAnswer {
	req, err := pki.ParseOCSPRequest(der)
	if err != nil {
		return errorAnswer(pki.OCSPMalformedRequest)
	}
	now := r.cfg.Now()
	signer, err := r.currentSigner(ctx, now)
	if err != nil {
		r.cfg.Logger.Error("OCSP responder has no valid certificate", "err", err)
		return errorAnswer(pki.OCSPTryLater)
	}
	for _, id := range req.CertIDs {
		if !signer.Covers(id) {
			return errorAnswer(pki.OCSPUnauthorized)
		}
	}
	key := ocspCacheKey(req)
	if req.Nonce == nil {
		if e, ok := r.cache.get(key, now); ok {
			return OCSPAnswer{DER: e.der, Status: pki.OCSPSuccessful, ThisUpdate: e.thisUpdate, CacheUntil: e.until}
		}
	}
	singles, cacheable, err := r.statuses(ctx, req.CertIDs, now)
	if err != nil {
		r.cfg.Logger.Warn("OCSP status lookup failed", "err", err)
		return errorAnswer(pki.OCSPTryLater)
	}
	out, err := signer.Sign(now, singles, req.Nonce)
	if err != nil {
		r.cfg.Logger.Error("OCSP response signing failed", "err", err)
		return errorAnswer(pki.OCSPInternalError)
	}
	if req.Nonce != nil {
		return OCSPAnswer{DER: out, Status: pki.OCSPSuccessful, Fresh: true}
	}
	answer := OCSPAnswer{DER: out, Status: pki.OCSPSuccessful, ThisUpdate: now}
	if cacheable {
		answer.CacheUntil = now.Add(r.cfg.CacheFor)
		r.cache.put(key, ocspCacheEntry{der: out, thisUpdate: now, until: answer.CacheUntil}, now)
	}
	return answer
}

func errorAnswer(s pki.OCSPResponseStatus) OCSPAnswer {
	return OCSPAnswer{DER: pki.OCSPErrorResponse(s), Status: s}
}

// statuses looks up every CertID. An answer holding unknown is not
// cacheable: the certificate may be recorded a moment later.
func (r *OCSPResponder) statuses(ctx context.Context, ids []pki.OCSPCertID, now time.Time) ([]pki.OCSPSingleResponse, bool, error) {
	cacheable := true
	out := make([]pki.OCSPSingleResponse, 0, len(ids))
	for _, id := range ids {
		single := pki.OCSPSingleResponse{CertID: id, Status: pki.OCSPUnknown, ThisUpdate: now, NextUpdate: now.Add(r.cfg.ResponseValidity)}
		c, known, err := r.lookup(ctx, id)
		if err != nil {
			return nil, false, err
		}
		switch {
		case !known:
			cacheable = false
		case !c.RevokedAt.IsZero():
			single.Status, single.RevokedAt, single.Reason = pki.OCSPRevoked, c.RevokedAt, ocspReason(c)
		default:
			single.Status = pki.OCSPGood
		}
		out = append(out, single)
	}
	return out, cacheable, nil
}

// lookup finds the certificate id names in the registry: false for a
// serial the CA cannot have issued, one the registry does not hold, or a
// certificate another CA issued (the registry outlives a replaced CA).
func (r *OCSPResponder) lookup(ctx context.Context, id pki.OCSPCertID) (store.Certificate, bool, error) {
	serial, ok := id.Serial()
	if !ok {
		return store.Certificate{}, false, nil
	}
	c, err := r.cfg.Certificates.GetCertificate(ctx, serial)
	if errors.Is(err, store.ErrNotFound) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("certificate %x: %w", serial, err)
	}
	return c, c.Serial == serial && issuedBy(c.DER, r.issuer), nil
}

// issuedBy compares the certificate's issuer name and authority key
// identifier with the CA's: the CertID already matched the CA's name and
// key hashes, so this only tells apart a certificate of an earlier CA.
func issuedBy(der []byte, issuer *x509.Certificate) bool {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return false
	}
	return bytes.Equal(c.RawIssuer, issuer.RawSubject) && bytes.Equal(c.AuthorityKeyId, issuer.SubjectKeyId)
}

// ocspReason is the CRLReason OCSP reports for a revoked certificate: the
// registry's, certificateHold for a suspended device's. A code OCSP
// cannot carry becomes unspecified (left out) rather than no answer.
func ocspReason(c store.Certificate) int {
	switch r := c.RevocationReason; {
	case r >= 0 && r <= 10 && r != 7:
		return r
	default:
		return pki.ReasonUnspecified
	}
}
