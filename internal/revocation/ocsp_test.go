package revocation

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/keys/softkms"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// The OCSP tests run on a settable clock; the OpenSSL ones on the wall
// clock, since OpenSSL checks times against its own.
var ocspTestNow = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

type ocspClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *ocspClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *ocspClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// certSource is an in-memory CertificateStatusSource.
type certSource struct {
	mu    sync.Mutex
	certs map[[16]byte]store.Certificate
	err   error
}

func (s *certSource) GetCertificate(_ context.Context, serial [16]byte) (store.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return store.Certificate{}, s.err
	}
	c, ok := s.certs[serial]
	if !ok {
		return c, store.ErrNotFound
	}
	return c, nil
}

func (s *certSource) put(c store.Certificate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.certs[c.Serial] = c
}

func (s *certSource) failWith(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

// ocspFixture is a CA with two recorded device certificates, good and
// revoked, one issued but not recorded, and a responder over them.
type ocspFixture struct {
	ca             *pki.CA
	km             keys.Manager
	clock          *ocspClock
	src            *certSource
	good, revoked  *pki.Issued
	unrecorded     *pki.Issued
	responder      *OCSPResponder
	revokedAt      time.Time
	revokedReason  int
	responderCalls *countingIssuer
}

func newOCSPTestCA(t testing.TB, suite sigalg.ID, now func() time.Time) (*pki.CA, keys.Manager) {
	t.Helper()
	dir := t.TempDir()
	km, err := softkms.Open(context.Background(), filepath.Join(dir, "keys"), []byte("test passphrase"), softkms.InsecureKDFIterations(1000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { km.Close() })
	ca, err := pki.Open(context.Background(), km, filepath.Join(dir, "ca"), pki.Config{Suite: suite, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return ca, km
}

func issueTestDevice(t testing.TB, ca *pki.CA, label string) *pki.Issued {
	t.Helper()
	seed := sha256.Sum256([]byte("revocation test device " + label))
	s, _ := sigalg.ECDSAP256.Suite()
	key, err := s.DeriveKey(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	iss, err := ca.IssueDevice(context.Background(), pki.DeviceRequest{
		Identity: identity.ID(sha256.Sum256([]byte(label))), PublicKey: key.Public(), Validity: 365 * 24 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func record(iss *pki.Issued) store.Certificate {
	return store.Certificate{Serial: iss.Serial, DER: iss.DER, NotBefore: iss.NotBefore, NotAfter: iss.NotAfter, IssuedAt: iss.NotBefore}
}

// countingIssuer counts responder certificates and fails on demand.
type countingIssuer struct {
	*pki.CA
	mu     sync.Mutex
	issued int
	fail   bool
}

func (c *countingIssuer) IssueOCSPResponder(ctx context.Context, pub crypto.PublicKey, validity time.Duration) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail {
		return nil, errors.New("CA unavailable")
	}
	c.issued++
	return c.CA.IssueOCSPResponder(ctx, pub, validity)
}

func newOCSPFixture(t testing.TB, suite sigalg.ID, now func() time.Time) *ocspFixture {
	t.Helper()
	f := &ocspFixture{src: &certSource{certs: map[[16]byte]store.Certificate{}}, revokedReason: pki.ReasonKeyCompromise}
	if now == nil {
		f.clock = &ocspClock{now: ocspTestNow}
		now = f.clock.Now
	}
	f.ca, f.km = newOCSPTestCA(t, suite, now)
	f.good = issueTestDevice(t, f.ca, "good")
	f.revoked = issueTestDevice(t, f.ca, "revoked")
	f.unrecorded = issueTestDevice(t, f.ca, "unrecorded")
	f.revokedAt = now().Add(-time.Hour).Truncate(time.Second)
	f.src.put(record(f.good))
	rev := record(f.revoked)
	rev.RevokedAt, rev.RevocationReason = f.revokedAt, f.revokedReason
	f.src.put(rev)
	f.responderCalls = &countingIssuer{CA: f.ca}
	var err error
	f.responder, err = NewOCSPResponder(context.Background(), OCSPConfig{CA: f.responderCalls, Keys: f.km, Certificates: f.src, Now: now})
	if err != nil {
		t.Fatalf("NewOCSPResponder: %v", err)
	}
	return f
}

// request is a DER OCSPRequest for the given certificates of f's CA.
func (f *ocspFixture) request(t testing.TB, hash crypto.Hash, nonce []byte, certs ...*pki.Issued) []byte {
	t.Helper()
	var serials [][pki.SerialSize]byte
	for _, c := range certs {
		serials = append(serials, c.Serial)
	}
	der, err := pki.CreateOCSPRequest(f.ca.IssuingCertificate(), serials, hash, nonce)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// verify checks a successful answer with the project's verifier.
func (f *ocspFixture) verify(t testing.TB, a OCSPAnswer, now time.Time, nonce []byte) *pki.OCSPResponse {
	t.Helper()
	if a.Status != pki.OCSPSuccessful {
		t.Fatalf("status %v, want successful", a.Status)
	}
	resp, err := pki.VerifyOCSPResponse(a.DER, f.ca.Chain()[0], now, nonce)
	if err != nil {
		t.Fatalf("VerifyOCSPResponse: %v", err)
	}
	return resp
}

func TestOCSPResponderStatuses(t *testing.T) {
	for _, suite := range []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519, sigalg.MLDSA65} {
		t.Run(string(suite), func(t *testing.T) {
			f := newOCSPFixture(t, suite, nil)
			// A certificate of an earlier CA under a serial this CA
			// might draw: the registry holds it, the CA did not issue it.
			earlier, _ := newOCSPTestCA(t, suite, f.clock.Now)
			foreign := issueTestDevice(t, earlier, "foreign")
			f.src.put(record(foreign))
			hold := issueTestDevice(t, f.ca, "hold")
			held := record(hold)
			held.RevokedAt, held.RevocationReason = f.revokedAt, pki.ReasonCertificateHold
			f.src.put(held)
			nonce := []byte("0123456789abcdef")
			for _, hash := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
				a := f.responder.Respond(t.Context(), f.request(t, hash, nonce, f.good, f.revoked, hold, f.unrecorded, foreign))
				resp := f.verify(t, a, ocspTestNow, nonce)
				want := []struct {
					status pki.OCSPCertStatus
					reason int
				}{{pki.OCSPGood, 0}, {pki.OCSPRevoked, pki.ReasonKeyCompromise}, {pki.OCSPRevoked, pki.ReasonCertificateHold}, {pki.OCSPUnknown, 0}, {pki.OCSPUnknown, 0}}
				for i, w := range want {
					got := resp.Responses[i]
					if got.Status != w.status || got.Reason != w.reason {
						t.Errorf("%v response %d: %v reason %d, want %v reason %d", hash, i, got.Status, got.Reason, w.status, w.reason)
					}
					if !got.ThisUpdate.Equal(ocspTestNow) || !got.NextUpdate.Equal(ocspTestNow.Add(DefaultOCSPResponseValidity)) {
						t.Errorf("response %d: thisUpdate %v nextUpdate %v", i, got.ThisUpdate, got.NextUpdate)
					}
				}
				if !resp.Responses[1].RevokedAt.Equal(f.revokedAt) {
					t.Errorf("revocation time %v, want %v", resp.Responses[1].RevokedAt, f.revokedAt)
				}
				if !bytes.Equal(resp.Signer.Raw, f.responder.signer.Load().Certificate().Raw) {
					t.Error("not signed by the delegated responder")
				}
			}
		})
	}
}

func TestOCSPResponderErrors(t *testing.T) {
	f := newOCSPFixture(t, sigalg.ECDSAP256, nil)
	other := newOCSPFixture(t, sigalg.ECDSAP256, nil)
	if a := f.responder.Respond(t.Context(), []byte{0x30, 0x00}); a.Status != pki.OCSPMalformedRequest {
		t.Errorf("malformed request: %v", a.Status)
	}
	// A request about another CA's certificate, alone or beside one of
	// ours: this responder cannot sign for it.
	for _, req := range [][]byte{other.request(t, crypto.SHA1, nil, other.good), mixedRequest(t, f, other)} {
		if a := f.responder.Respond(t.Context(), req); a.Status != pki.OCSPUnauthorized || !bytes.Equal(a.DER, pki.OCSPErrorResponse(pki.OCSPUnauthorized)) {
			t.Errorf("another issuer: %v", a.Status)
		}
	}
	f.src.failWith(errors.New("database down"))
	if a := f.responder.Respond(t.Context(), f.request(t, crypto.SHA1, nil, f.good)); a.Status != pki.OCSPTryLater {
		t.Errorf("registry down: %v", a.Status)
	}
}

// mixedRequest asks f's responder about one certificate of f's CA and
// one of other's.
func mixedRequest(t *testing.T, f, other *ocspFixture) []byte {
	t.Helper()
	ours, err := pki.ParseOCSPRequest(f.request(t, crypto.SHA1, nil, f.good))
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := pki.ParseOCSPRequest(other.request(t, crypto.SHA1, nil, other.good))
	if err != nil {
		t.Fatal(err)
	}
	// Both CertIDs in one request: splice the second into the first.
	a, b := ours.CertIDs[0].Raw(), theirs.CertIDs[0].Raw()
	der := f.request(t, crypto.SHA1, nil, f.good, f.good)
	i := bytes.LastIndex(der, a)
	return append(append(der[:i:i], b...), der[i+len(a):]...)
}

func TestOCSPResponderCache(t *testing.T) {
	f := newOCSPFixture(t, sigalg.ECDSAP256, nil)
	req := f.request(t, crypto.SHA1, nil, f.good)
	first := f.responder.Respond(t.Context(), req)
	if first.CacheUntil.IsZero() || !first.CacheUntil.Equal(ocspTestNow.Add(DefaultOCSPCacheFor)) {
		t.Fatalf("CacheUntil = %v", first.CacheUntil)
	}
	// Revoke: within CacheFor the cached answer stands, signed before
	// the revocation and saying so by its thisUpdate.
	c := record(f.good)
	c.RevokedAt, c.RevocationReason = ocspTestNow, pki.ReasonKeyCompromise
	f.src.put(c)
	f.clock.Add(DefaultOCSPCacheFor - time.Second)
	if again := f.responder.Respond(t.Context(), req); !bytes.Equal(again.DER, first.DER) {
		t.Fatal("a request without nonce within CacheFor was signed afresh")
	}
	// A nonce bypasses the cache.
	nonce := []byte{1, 2, 3, 4}
	fresh := f.responder.Respond(t.Context(), f.request(t, crypto.SHA1, nonce, f.good))
	if !fresh.Fresh || !fresh.CacheUntil.IsZero() || f.verify(t, fresh, f.clock.Now(), nonce).Responses[0].Status != pki.OCSPRevoked {
		t.Fatal("a nonce request did not get a fresh answer showing the revocation")
	}
	// Past CacheFor, the revocation shows without a nonce too.
	f.clock.Add(time.Second)
	if got := f.verify(t, f.responder.Respond(t.Context(), req), f.clock.Now(), nil); got.Responses[0].Status != pki.OCSPRevoked {
		t.Fatalf("after CacheFor: %v", got.Responses[0].Status)
	}
	// Purge drops cached answers at once.
	f.src.put(record(f.good))
	f.responder.Purge()
	if got := f.verify(t, f.responder.Respond(t.Context(), req), f.clock.Now(), nil); got.Responses[0].Status != pki.OCSPGood {
		t.Fatalf("after Purge: %v", got.Responses[0].Status)
	}
	// Unknown is not cached: the certificate may be recorded a moment
	// later.
	unknownReq := f.request(t, crypto.SHA1, nil, f.unrecorded)
	if a := f.responder.Respond(t.Context(), unknownReq); !a.CacheUntil.IsZero() {
		t.Fatal("an unknown answer was cached")
	}
	f.src.put(record(f.unrecorded))
	if got := f.verify(t, f.responder.Respond(t.Context(), unknownReq), f.clock.Now(), nil); got.Responses[0].Status != pki.OCSPGood {
		t.Fatalf("recorded after an unknown answer: %v", got.Responses[0].Status)
	}
}

func TestOCSPResponderRotatesItsCertificate(t *testing.T) {
	f := newOCSPFixture(t, sigalg.ECDSAP256, nil)
	req := f.request(t, crypto.SHA256, []byte{9}, f.good)
	first := f.responder.signer.Load()
	// Just before two thirds of its life: still the same certificate.
	f.clock.Add(DefaultOCSPResponderValidity*2/3 - time.Minute)
	f.verify(t, f.responder.Respond(t.Context(), req), f.clock.Now(), []byte{9})
	if f.responder.signer.Load() != first {
		t.Fatal("renewed too early")
	}
	// Past it, a failed renewal keeps the old certificate, still valid.
	f.clock.Add(2 * time.Minute)
	f.responderCalls.fail = true
	f.verify(t, f.responder.Respond(t.Context(), req), f.clock.Now(), []byte{9})
	// The next request renews.
	f.responderCalls.fail = false
	resp := f.verify(t, f.responder.Respond(t.Context(), req), f.clock.Now(), []byte{9})
	if f.responderCalls.issued != 2 || bytes.Equal(resp.Signer.Raw, first.Certificate().Raw) {
		t.Fatalf("not renewed: %d certificates issued", f.responderCalls.issued)
	}
	// A responder whose certificate expired and cannot renew says
	// tryLater rather than sign with an expired certificate.
	f.responderCalls.fail = true
	f.clock.Add(DefaultOCSPResponderValidity)
	if a := f.responder.Respond(t.Context(), req); a.Status != pki.OCSPTryLater {
		t.Fatalf("expired responder: %v", a.Status)
	}
}

func TestNewOCSPResponderRefuses(t *testing.T) {
	f := newOCSPFixture(t, sigalg.ECDSAP256, nil)
	for _, cfg := range []OCSPConfig{
		{Keys: f.km, Certificates: f.src},
		{CA: f.ca, Keys: f.km, Certificates: f.src, ResponderValidity: pki.MaxOCSPResponderValidity + time.Hour},
		{CA: f.ca, Keys: f.km, Certificates: f.src, CacheFor: 2 * time.Hour},
		{CA: f.ca, Keys: f.km, Certificates: f.src, ResponderValidity: 24 * time.Hour, ResponseValidity: 12 * time.Hour},
	} {
		if _, err := NewOCSPResponder(t.Context(), cfg); err == nil {
			t.Errorf("NewOCSPResponder(%+v) succeeded", cfg)
		}
	}
	// The key exists from the first responder: a second one reuses it.
	again, err := NewOCSPResponder(t.Context(), OCSPConfig{CA: f.ca, Keys: f.km, Certificates: f.src, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.signer.Load().Certificate().RawSubjectPublicKeyInfo, f.responder.signer.Load().Certificate().RawSubjectPublicKeyInfo) {
		t.Error("a second responder made a new key")
	}
}
