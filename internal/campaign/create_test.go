package campaign

import (
	"context"
	"crypto/x509"
	"errors"
	"math/big"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// racingStore is another replica creating a campaign over rival's
// devices just before this service's first creation reaches the store:
// after the service read its view, inside the window the store must
// close.
type racingStore struct {
	Store
	once  sync.Once
	rival []identity.ID
}

func (r *racingStore) CreateCampaign(ctx context.Context, c store.Campaign, devices []store.CampaignDevice) error {
	var err error
	r.once.Do(func() {
		other := c
		other.ID, other.DeviceCount = "cmp_00000000000000ff", len(r.rival)
		other.Waves = []store.CampaignWave{{Size: len(r.rival)}}
		rows := make([]store.CampaignDevice, len(r.rival))
		for i, id := range r.rival {
			rows[i] = store.CampaignDevice{Identity: id, State: "pending"}
		}
		err = r.Store.CreateCampaign(ctx, other, rows)
	})
	if err != nil {
		return err
	}
	return r.Store.CreateCampaign(ctx, c, devices)
}

// TestCreateLeavesOutDevicesTakenMeanwhile: the store refuses the
// devices another replica's campaign took since the view was read; the
// service leaves them out, counts them busy and stores the rest, in
// waves resolved over what remains.
func TestCreateLeavesOutDevicesTakenMeanwhile(t *testing.T) {
	e := newEnv(t, 6)
	race := &racingStore{Store: e.count, rival: e.ids[:3]}
	svc, err := New(Config{Store: race, Images: e.st, Devices: certAuth{}, RefreshEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	out, err := svc.Create(context.Background(), e.caller, CreateRequest{Target: Target{Product: "meter"}, Image: e.image, Waves: "1,100%"})
	if err != nil {
		t.Fatal(err)
	}
	if out.Campaign.DeviceCount != 3 || out.Busy != 3 || len(out.Waves) != 2 || out.Waves[0].Size+out.Waves[1].Size != 3 {
		t.Fatalf("created %d devices in waves %+v, %d busy; want 3 in waves of 1 and 2, 3 busy", out.Campaign.DeviceCount, out.Waves, out.Busy)
	}
	members, err := e.st.CampaignMembers(context.Background(), out.Campaign.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range members {
		if slices.Contains(race.rival, id) {
			t.Errorf("device %s is in both campaigns", id)
		}
	}

	// Every device taken: refused as a target that holds no device.
	e2 := newEnv(t, 3)
	all := &racingStore{Store: e2.count, rival: e2.ids}
	svc2, _ := New(Config{Store: all, Images: e2.st, Devices: certAuth{}, RefreshEvery: time.Hour})
	_, err = svc2.Create(context.Background(), e2.caller, CreateRequest{Target: Target{Product: "meter"}, Image: e2.image})
	var ae *admin.Error
	if !errors.As(err, &ae) || ae.Code != admin.CodeMalformed {
		t.Fatalf("every device taken meanwhile: %v, want malformed (no device)", err)
	}
}

// listedSerials is a Revocations of fixed serials.
type listedSerials map[string]bool

func (l listedSerials) ContainsCertificate(serial *big.Int) bool {
	return serial != nil && l[serial.String()]
}

// refusingAuth refuses the certificates of revoked serials, as the
// platform's authentication does, and counts its calls.
type refusingAuth struct {
	revoked listedSerials
	mu      sync.Mutex
	calls   int
}

func (a *refusingAuth) AuthenticateDevice(_ context.Context, leaf *x509.Certificate, _, _ string) (identity.ID, error) {
	a.mu.Lock()
	a.calls++
	a.mu.Unlock()
	if a.revoked[leaf.SerialNumber.String()] {
		return identity.ID{}, onboarding.ErrRevoked
	}
	return identity.Parse(leaf.Subject.CommonName)
}

// TestPollOfListedCertificate: an untargeted device whose certificate is
// listed revoked is authenticated, and refused; one not listed is
// answered from memory, with neither an authentication nor a store
// call; a listed one the store clears (resumed since) gets nothing.
func TestPollOfListedCertificate(t *testing.T) {
	e := newEnv(t, 3)
	for i, leaf := range e.leaves {
		leaf.SerialNumber = big.NewInt(int64(100 + i))
	}
	listed := listedSerials{"100": true, "101": true}
	auth := &refusingAuth{revoked: listedSerials{"100": true}}
	svc, err := New(Config{Store: e.count, Images: e.st, Devices: auth, Revoked: listed, RefreshEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	must(t, svc.Refresh(ctx))
	before := e.count.calls.Load()
	if _, _, err := svc.Poll(ctx, e.leaves[0], "127.0.0.1"); !errors.Is(err, onboarding.ErrRevoked) {
		t.Fatalf("poll with a revoked certificate: %v, want ErrRevoked", err)
	}
	if a, _, err := svc.Poll(ctx, e.leaves[1], "127.0.0.1"); a != nil || err != nil {
		t.Fatalf("poll with a listed certificate the store clears: %v, %v", a, err)
	}
	if auth.calls != 2 {
		t.Fatalf("%d authentications, want 2 (the listed certificates)", auth.calls)
	}
	if a, _, err := svc.Poll(ctx, e.leaves[2], "127.0.0.1"); a != nil || err != nil || auth.calls != 2 {
		t.Fatalf("poll of a device in good standing: %v, %v, %d authentications", a, err, auth.calls)
	}
	if n := e.count.calls.Load() - before; n != 0 {
		t.Fatalf("%d store calls for untargeted polls, want 0", n)
	}
}
