package monitoring

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

var errSuspended = errors.New("device suspended")

// fakes: an authenticator that knows one serial, and a store that
// records what it is asked and answers batches from a budget.
type fakeAuth struct {
	id      identity.ID
	refuse  error
	actions []string
}

func (a *fakeAuth) AuthenticateDevice(_ context.Context, leaf *x509.Certificate, action, _ string) (identity.ID, error) {
	a.actions = append(a.actions, action)
	if a.refuse != nil {
		return identity.ID{}, a.refuse
	}
	return a.id, nil
}

type fakeStore struct {
	statuses        []store.DeviceStatus
	expiring        map[time.Duration]int // left to note, per threshold
	silent          int
	silentSince     []time.Time
	expiringBatches int
}

func (f *fakeStore) RecordStatus(_ context.Context, s store.DeviceStatus) (store.StatusRecorded, error) {
	f.statuses = append(f.statuses, s)
	return store.StatusRecorded{ProductID: "p"}, nil
}

func (f *fakeStore) ListProducts(context.Context) ([]store.Product, error) {
	return []store.Product{{ID: "p"}, {ID: "q", HeartbeatInterval: 5 * time.Hour}}, nil
}

func (f *fakeStore) NoteFirmwareOutdated(context.Context, identity.ID, string, string, time.Time, string) (bool, error) {
	return false, nil
}

func (f *fakeStore) NoteCloneSuspected(context.Context, identity.ID, time.Time, time.Duration, string) (bool, error) {
	return false, nil
}

func (f *fakeStore) NoteOnboardingSource(context.Context, identity.ID, string, time.Time) (string, error) {
	return "", nil
}

func (f *fakeStore) NoteFailedProof(context.Context, identity.ID, time.Time, time.Duration, int) (int, error) {
	return 0, nil
}

func (f *fakeStore) ListEvents(context.Context, store.EventFilter) ([]store.DeviceEvent, error) {
	return nil, nil
}

func (f *fakeStore) NoteExpiringCertificates(_ context.Context, _ time.Time, within time.Duration, limit int) (int, error) {
	f.expiringBatches++
	n := min(f.expiring[within], limit)
	f.expiring[within] -= n
	return n, nil
}

func (f *fakeStore) NoteSilentDevices(_ context.Context, _ time.Time, product string, since time.Time, limit int) (int, error) {
	if product != "p" {
		return 0, nil
	}
	f.silentSince = append(f.silentSince, since)
	n := min(f.silent, limit)
	f.silent -= n
	return n, nil
}

func goodReport() StatusReport {
	return StatusReport{FirmwareVersion: "2.0.0-rc.1+build.7", SecurityCounter: 9, BootResult: "fallback",
		EnrolmentAlgorithm: sigalg.Ed25519, OperationalAlgorithm: sigalg.ECDSAP256, UptimeSeconds: 86400}
}

func TestCheckReport(t *testing.T) {
	if err := goodReport().Check(); err != nil {
		t.Fatalf("good report refused: %v", err)
	}
	for name, mutate := range map[string]func(*StatusReport){
		"empty version":     func(r *StatusReport) { r.FirmwareVersion = "" },
		"long version":      func(r *StatusReport) { r.FirmwareVersion = strings.Repeat("1", MaxFirmwareVersion+1) },
		"space in version":  func(r *StatusReport) { r.FirmwareVersion = "1.0 beta" },
		"leading dot":       func(r *StatusReport) { r.FirmwareVersion = ".1" },
		"control character": func(r *StatusReport) { r.FirmwareVersion = "1.0\n" },
		"boot result":       func(r *StatusReport) { r.BootResult = "OK" },
		"enrolment suite":   func(r *StatusReport) { r.EnrolmentAlgorithm = "rsa-2048" },
		"operational suite": func(r *StatusReport) { r.OperationalAlgorithm = "" },
		"negative uptime":   func(r *StatusReport) { r.UptimeSeconds = -1 },
		"uptime too long":   func(r *StatusReport) { r.UptimeSeconds = MaxUptimeSeconds + 1 },
	} {
		r := goodReport()
		mutate(&r)
		if err := r.Check(); !errors.Is(err, ErrMalformedReport) {
			t.Errorf("%s: %v, want ErrMalformedReport", name, err)
		}
	}
}

func newTestService(t *testing.T, st *fakeStore, auth *fakeAuth, now time.Time) *Service {
	t.Helper()
	s, err := New(Config{Store: st, Devices: auth, Heartbeat: time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestReportStatus(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 123456789, time.FixedZone("CET", 3600))
	id := identity.FromSPKI([]byte("device"))
	leaf := &x509.Certificate{SerialNumber: big.NewInt(7)}
	st, auth := &fakeStore{}, &fakeAuth{id: id}
	s := newTestService(t, st, auth, now)

	receipt, err := s.ReportStatus(context.Background(), leaf, goodReport(), "192.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	wantAt := now.UTC().Truncate(time.Microsecond)
	if receipt.Identity != id || !receipt.ReceivedAt.Equal(wantAt) || receipt.ReceivedAt.Location() != time.UTC {
		t.Errorf("receipt %+v", receipt)
	}
	want := store.DeviceStatus{Identity: id, ReceivedAt: wantAt, FirmwareVersion: "2.0.0-rc.1+build.7", SecurityCounter: 9,
		BootResult: "fallback", EnrolmentAlgorithm: sigalg.Ed25519, OperationalAlgorithm: sigalg.ECDSAP256,
		Uptime: 24 * time.Hour, RemoteAddr: "192.0.2.7"}
	if len(st.statuses) != 1 || st.statuses[0] != want {
		t.Errorf("kept %+v, want %+v", st.statuses, want)
	}
	if len(auth.actions) != 1 || auth.actions[0] != ActionStatus {
		t.Errorf("authenticated as %v", auth.actions)
	}

	// Refused by the device's standing: nothing kept.
	auth.refuse = errSuspended
	if _, err := s.ReportStatus(context.Background(), leaf, goodReport(), "192.0.2.7"); !errors.Is(err, errSuspended) {
		t.Errorf("suspended: %v", err)
	}
	// Malformed: refused before anything is looked up.
	bad := goodReport()
	bad.BootResult = "x"
	if _, err := s.ReportStatus(context.Background(), leaf, bad, "192.0.2.7"); !errors.Is(err, ErrMalformedReport) {
		t.Errorf("malformed: %v", err)
	}
	if len(st.statuses) != 1 || len(auth.actions) != 2 {
		t.Errorf("refusals changed something: %d statuses, %d lookups", len(st.statuses), len(auth.actions))
	}
}

func TestSweepDrainsBatches(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	const day = 24 * time.Hour
	st := &fakeStore{expiring: map[time.Duration]int{30 * day: 2*sweepBatch + 5, 7 * day: sweepBatch}, silent: 3}
	s := newTestService(t, st, &fakeAuth{}, now)
	res, err := s.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Expiring != 3*sweepBatch+5 || res.Silent != 3 {
		t.Errorf("sweep %+v", res)
	}
	// 30 days: three batches (the last short); 7 days: a full batch,
	// then an empty one.
	if st.expiringBatches != 5 {
		t.Errorf("%d expiry batches, want 5", st.expiringBatches)
	}
	if len(st.silentSince) != 1 || !st.silentSince[0].Equal(now.Add(-time.Hour)) {
		t.Errorf("silence since %v, want an hour before now", st.silentSince)
	}
	// Without a heartbeat there is no silence sweep.
	st2 := &fakeStore{expiring: map[time.Duration]int{}}
	s2, err := New(Config{Store: st2, Devices: &fakeAuth{}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Sweep(context.Background()); err != nil || len(st2.silentSince) != 0 {
		t.Errorf("no heartbeat: %v, %d silence sweeps", err, len(st2.silentSince))
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no store":           {Devices: &fakeAuth{}},
		"no authenticator":   {Store: &fakeStore{}},
		"threshold too soon": {Store: &fakeStore{}, Devices: &fakeAuth{}, ExpiryThresholds: []time.Duration{time.Minute}},
		"fractional":         {Store: &fakeStore{}, Devices: &fakeAuth{}, ExpiryThresholds: []time.Duration{time.Hour + time.Millisecond}},
		"negative heartbeat": {Store: &fakeStore{}, Devices: &fakeAuth{}, Heartbeat: -time.Second},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzStatusReport: whatever a client sends, decoding and checking a
// report never panics, and an accepted report keeps the rules.
func FuzzStatusReport(f *testing.F) {
	good, _ := json.Marshal(goodReport())
	f.Add(good)
	f.Add([]byte(`{"firmware_version":"1.0.0","security_counter":4294967295,"boot_result":"ok","enrolment_algorithm":"ml-dsa-65","operational_algorithm":"ecdsa-p256","uptime_seconds":0}`))
	f.Add([]byte(`{"firmware_version":"1.0 beta","boot_result":"pwned","uptime_seconds":-1}`))
	f.Add([]byte(`{"security_counter":4294967296}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r StatusReport
		if json.Unmarshal(data, &r) != nil {
			return
		}
		if r.Check() != nil {
			return
		}
		if len(r.FirmwareVersion) == 0 || len(r.FirmwareVersion) > MaxFirmwareVersion ||
			strings.ContainsFunc(r.FirmwareVersion, func(c rune) bool { return c <= ' ' || c > '~' }) ||
			r.UptimeSeconds < 0 || r.UptimeSeconds > MaxUptimeSeconds {
			t.Fatalf("accepted %+v", r)
		}
	})
}
