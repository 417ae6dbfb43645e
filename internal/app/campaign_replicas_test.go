package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
	"github.com/hallmark-iot/hallmark/internal/store/postgres/pgtest"
)

// TestCampaignCreateAcrossReplicas: two replicas on one PostgreSQL are
// asked over HTTPS, at the same moment, to create campaigns over
// overlapping sets of devices. Each replica's view of open campaigns
// cannot know what the other is creating; the store checks inside its
// transaction. Every creation either succeeds with the devices taken by
// another counted busy (device_count + busy is its whole target) or, with
// nothing left, is refused; and no device ends in two open campaigns.
func TestCampaignCreateAcrossReplicas(t *testing.T) {
	t.Parallel()
	const devices, creators, window, rounds = 16, 6, 6, 3
	database := pgtest.NewDatabase(t)
	dir := t.TempDir()
	seedCAKeys(t, dir)
	var replicas []*Platform
	for range 2 {
		p, err := Start(context.Background(), Config{DataDir: dir, Database: database, Listen: "127.0.0.1:0",
			ServerName: "localhost", CASuite: sigalg.ECDSAP256})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		replicas = append(replicas, p)
	}
	algs := make([]sigalg.ID, devices)
	for i := range algs {
		algs[i] = sigalg.ECDSAP256
	}
	f := newFleet(t, algs...)
	admins := []*httpapi.Client{adminClient(t, replicas[0]), adminClient(t, replicas[1])}
	f.register(t, admins[0])
	for i, d := range f.devices {
		if _, _, err := onboard(t, replicas[i%2], d, f.ids[i]); err != nil {
			t.Fatal(err)
		}
	}
	digest := sha256.Sum256([]byte("meter image 3.0.0"))
	if _, _, err := replicas[0].Store.PutFirmwareImage(context.Background(), store.FirmwareImage{Digest: digest, ProductID: "meter",
		Type: "app", Version: "3.0.0", SecurityCounter: 3, Size: 4096, UploadedAt: time.Now(), UploadedBy: "token:test"}); err != nil {
		t.Fatal(err)
	}
	image := hex.EncodeToString(digest[:])
	ctx := context.Background()
	busySeen := 0
	for round := range rounds {
		start := make(chan struct{})
		var wg sync.WaitGroup
		created := make([]httpapi.Campaign, creators)
		errs := make([]error, creators)
		for k := range creators {
			var ids []string
			for _, id := range f.ids[2*k : 2*k+window] {
				ids = append(ids, id.String())
			}
			wg.Go(func() {
				<-start
				created[k], errs[k] = admins[k%2].CreateCampaign(ctx, httpapi.CampaignRequest{Product: "meter", Image: image, Devices: ids})
			})
		}
		close(start)
		wg.Wait()
		owner := map[string]string{}
		for k := range creators {
			if errs[k] != nil {
				var p *httpapi.Problem
				if !errors.As(errs[k], &p) || (p.Code != "malformed-request" && p.Code != "conflict") {
					t.Fatalf("round %d, creator %d: %v", round, k, errs[k])
				}
				continue
			}
			c := created[k]
			if c.DeviceCount+c.Busy != window || c.Unmatched != 0 {
				t.Errorf("round %d, creator %d: %d devices + %d busy + %d unmatched, want %d in all", round, k, c.DeviceCount, c.Busy, c.Unmatched, window)
			}
			busySeen += c.Busy
			list, err := admins[(k+1)%2].ListCampaignDevices(ctx, c.ID, "", "", 100)
			if err != nil {
				t.Fatal(err)
			}
			if len(list.Devices) != c.DeviceCount {
				t.Errorf("campaign %s lists %d devices, says %d", c.ID, len(list.Devices), c.DeviceCount)
			}
			for _, d := range list.Devices {
				if other, dup := owner[d.Identity]; dup {
					t.Errorf("round %d: device %s is in open campaigns %s and %s", round, d.Identity, other, c.ID)
				}
				owner[d.Identity] = c.ID
			}
		}
		if len(owner) != devices {
			t.Errorf("round %d: %d devices in an open campaign, want all %d", round, len(owner), devices)
		}
		// Close this round's campaigns, so the next starts from none.
		for k, c := range created {
			if errs[k] == nil {
				if _, err := admins[k%2].CampaignAction(ctx, c.ID, "cancel", fmt.Sprint("round ", round, " over")); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if busySeen == 0 {
		t.Error("no creation counted a busy device: the targets overlap, so later ones must")
	}
}
