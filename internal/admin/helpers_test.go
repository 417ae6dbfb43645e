package admin

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/sigalg/sigalgtest"
	"github.com/hallmark-iot/hallmark/internal/store"
)

var testStart = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

func testNow() time.Time { return testStart }

// memLog is an audit log in memory.
type memLog struct {
	mu     sync.Mutex
	events []store.AuditEvent
}

func (m *memLog) AppendAudit(_ context.Context, e store.AuditEvent) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, e)
	return int64(len(m.events)), nil
}

// only returns the one event recorded, failing unless there is exactly one.
func (m *memLog) only(t *testing.T) store.AuditEvent {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.events) != 1 {
		t.Fatalf("%d audit events, want 1: %+v", len(m.events), m.events)
	}
	e := m.events[0]
	m.events = nil
	return e
}

func newRecorder() (*audit.Recorder, *memLog) {
	log := &memLog{}
	return audit.NewRecorder(log, nil, testNow), log
}

// fakeTokens is a TokenStore in memory.
type fakeTokens struct {
	tokens map[string]store.Token
	err    error // returned by every call when set
}

func (f *fakeTokens) CreateToken(_ context.Context, t store.Token) error {
	if f.err != nil {
		return f.err
	}
	if f.tokens == nil {
		f.tokens = map[string]store.Token{}
	}
	f.tokens[t.ID] = t
	return nil
}

func (f *fakeTokens) GetToken(_ context.Context, id string) (store.Token, error) {
	if f.err != nil {
		return store.Token{}, f.err
	}
	t, ok := f.tokens[id]
	if !ok {
		return t, store.ErrNotFound
	}
	return t, nil
}

func (f *fakeTokens) ListTokens(context.Context) ([]store.Token, error) {
	var out []store.Token
	for _, t := range f.tokens {
		out = append(out, t)
	}
	return out, f.err
}

func (f *fakeTokens) RevokeToken(_ context.Context, id string, at time.Time) error {
	t, ok := f.tokens[id]
	if !ok {
		return store.ErrNotFound
	}
	t.RevokedAt = at
	f.tokens[id] = t
	return nil
}

// fakeDevices is a DeviceStore in memory that remembers the jobs a
// revocation enqueued.
type fakeDevices struct {
	devices  map[identity.ID]store.Device
	enqueued []store.Job
	revokes  int
}

func (f *fakeDevices) GetDevice(_ context.Context, id identity.ID) (store.Device, error) {
	d, ok := f.devices[id]
	if !ok {
		return d, store.ErrNotFound
	}
	return d, nil
}

func (f *fakeDevices) ListDevices(context.Context, store.DeviceFilter) ([]store.Device, error) {
	var out []store.Device
	for _, d := range f.devices {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b store.Device) int { return bytes.Compare(a.Identity[:], b.Identity[:]) })
	return out, nil
}

func (f *fakeDevices) ListCertificates(context.Context, identity.ID) ([]store.Certificate, error) {
	return nil, nil
}

// TransitionDevice applies the store's rules (store.PlanTransition);
// revokes counts the revocations that changed a device.
func (f *fakeDevices) TransitionDevice(_ context.Context, id identity.ID, req store.TransitionRequest) (store.TransitionResult, error) {
	d, ok := f.devices[id]
	if !ok {
		return store.TransitionResult{}, store.ErrNotFound
	}
	res := store.TransitionResult{Device: d, From: d.State}
	_, changed, err := store.PlanTransition(d, req)
	if err != nil || !changed {
		return res, err
	}
	if req.Transition == store.TransitionRevoke {
		f.revokes++
	}
	res.Changed, res.Device = true, req.Apply(d)
	f.devices[id] = res.Device
	f.enqueued = append(f.enqueued, req.JobsFor(d)...)
	return res, nil
}

func (f *fakeDevices) ListJobs(_ context.Context, flt store.JobFilter) ([]store.Job, error) {
	var out []store.Job
	for _, j := range f.enqueued {
		if j.Identity == flt.Identity {
			out = append(out, j)
		}
	}
	return out, nil
}

func (f *fakeDevices) LatestJobs(_ context.Context, ids []identity.ID) (map[identity.ID][]store.Job, error) {
	out := map[identity.ID][]store.Job{}
	for _, j := range f.enqueued {
		if slices.Contains(ids, j.Identity) {
			out[j.Identity] = append(out[j.Identity], j)
		}
	}
	return out, nil
}

// fakeManifests is a ManifestStore in memory.
type fakeManifests struct {
	products map[string]store.Product
	stations map[identity.ID]store.Station
	batches  map[string]store.Batch
	devices  map[identity.ID]string // identity → batch
}

func (f *fakeManifests) GetProduct(_ context.Context, id string) (store.Product, error) {
	p, ok := f.products[id]
	if !ok {
		return p, store.ErrNotFound
	}
	return p, nil
}

func (f *fakeManifests) GetStation(_ context.Context, id identity.ID) (store.Station, error) {
	s, ok := f.stations[id]
	if !ok {
		return s, store.ErrNotFound
	}
	return s, nil
}

func (f *fakeManifests) ImportBatch(_ context.Context, b store.Batch, devices []store.Device) (store.ImportResult, error) {
	if prior, ok := f.batches[b.ID]; ok {
		if prior.ManifestDigest != b.ManifestDigest {
			return store.ImportResult{}, store.ErrConflict
		}
		return store.ImportResult{AlreadyImported: true}, nil
	}
	var dups []identity.ID
	for _, d := range devices {
		if owner, ok := f.devices[d.Identity]; ok && owner != b.ID {
			dups = append(dups, d.Identity)
		}
	}
	if len(dups) > 0 {
		return store.ImportResult{Duplicates: dups}, nil
	}
	f.batches[b.ID] = b
	for _, d := range devices {
		f.devices[d.Identity] = b.ID
	}
	return store.ImportResult{Imported: len(devices)}, nil
}

// ImportBatchStream reads src whole and imports it as ImportBatch does:
// the stores' own streaming is tested by storetest.
func (f *fakeManifests) ImportBatchStream(ctx context.Context, b store.Batch, src store.DeviceSource) (store.ImportResult, error) {
	var devices []store.Device
	for {
		d, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return store.ImportResult{}, err
		}
		devices = append(devices, d)
	}
	b.ManifestDigest, b.DeviceCount = src.Digest(), len(devices)
	return f.ImportBatch(ctx, b, devices)
}

func (f *fakeManifests) GetBatch(_ context.Context, id string) (store.Batch, error) {
	b, ok := f.batches[id]
	if !ok {
		return b, store.ErrNotFound
	}
	return b, nil
}

// caller is an authenticated admin caller.
func caller(scopes ...string) Caller {
	return Caller{Token: store.Token{ID: "abcdefgh1234", Scopes: scopes}, Addr: "192.0.2.1", Route: "/v1/admin/x"}
}

// wantCode checks err is an *Error of code.
func wantCode(t *testing.T, err error, code string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("error %v, want code %s", err, code)
	}
	return e
}

// deriveKey derives a key of suite id from a seed naming it, so tests are
// reproducible.
func deriveKey(t testing.TB, id sigalg.ID, name string, n int) crypto.Signer {
	return sigalgtest.DeriveNamed(t, id, name, n)
}

// writeManifest writes a manifest of n Ed25519 devices named by prefix,
// signed by station.
func writeManifest(t testing.TB, station crypto.Signer, batch, prefix string, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := manifest.NewWriter(&buf, manifest.Header{Batch: batch, Created: testStart}, station)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		key := deriveKey(t, sigalg.Ed25519, prefix, i)
		id, err := identity.FromPublicKey(key.Public())
		if err != nil {
			t.Fatal(err)
		}
		nonce := sha256.Sum256(id[:])
		proof, err := sigalg.Sign(key, identity.ProofMessage(identity.FactoryProofContext, nonce[:], id))
		if err != nil {
			t.Fatal(err)
		}
		rec := manifest.Record{Identity: id, Algorithm: sigalg.Ed25519, PublicKey: key.Public(),
			RootOfTrust: manifest.PUF, Injection: manifest.NotInjected, Time: testStart, Nonce: nonce[:], Proof: proof}
		if err := w.Add(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
