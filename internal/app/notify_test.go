package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"net/http"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/connector/mosquitto"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/ota"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Update hints end to end (docs/ota.md, "Notification over MQTT"): a
// platform with the Mosquitto connector, a real broker, devices
// subscribed to their own update topics with their certificates.
// "Nothing arrived" is shown without waiting: once the dispatcher is
// idle (every hint acknowledged by the broker), the device publishes a
// marker to its own update topic, and a hint sent to it would have
// arrived before the marker.

// hintListener is one device's subscription to its update topic.
type hintListener struct {
	s    *mosquitto.Session
	msgs <-chan []byte
	id   identity.ID
}

func listenHints(t *testing.T, e *cloudEnv, id identity.ID, cert *tls.Certificate) *hintListener {
	t.Helper()
	s, err := mosquitto.Connect(t.Context(), e.broker.DeviceURL(), *cert, e.roots)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	msgs, err := s.Subscribe(t.Context(), mosquitto.UpdateTopic("devices/", id.String()))
	if err != nil {
		t.Fatalf("subscribe to the own update topic: %v", err)
	}
	return &hintListener{s: s, msgs: msgs, id: id}
}

// next is the next message (failing after a hang guard, not a timing
// assertion).
func (l *hintListener) next(t *testing.T) []byte {
	t.Helper()
	select {
	case m, ok := <-l.msgs:
		if !ok {
			t.Fatal("the subscription ended")
		}
		return m
	case <-time.After(20 * time.Second):
		t.Fatalf("device %s: no message", l.id.Short())
	}
	return nil
}

// hint is the next message, which must be a hint of campaign id.
func (l *hintListener) hint(t *testing.T, id string) connector.Hint {
	t.Helper()
	h, err := connector.ParseHint(l.next(t))
	if err != nil || h.Campaign != id {
		t.Fatalf("device %s: hint %+v, %v; want one of %s", l.id.Short(), h, err, id)
	}
	return h
}

// nothing fails the test if a message waits before a marker.
func (l *hintListener) nothing(t *testing.T) {
	t.Helper()
	marker := []byte("marker")
	if err := l.s.Publish(t.Context(), mosquitto.UpdateTopic("devices/", l.id.String()), marker); err != nil {
		t.Fatal(err)
	}
	if got := l.next(t); !bytes.Equal(got, marker) {
		t.Fatalf("device %s received %q", l.id.Short(), got)
	}
}

// waitHintsSent waits until the dispatcher has nothing left to send.
func waitHintsSent(t *testing.T, p *Platform) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !p.hints.Idle() {
		if time.Now().After(deadline) {
			t.Fatal("hints still waiting to be sent")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestUpdateHintsFollowWaves: creating a campaign hints exactly the
// devices of its open wave; the hinted device polls over mutual TLS and
// is offered the update; its report opens the next wave, which hints
// exactly the others; a pause and a resume hint again those still
// pending; a webhook connector gets no hints (not a Notifier).
func TestUpdateHintsFollowWaves(t *testing.T) {
	t.Parallel()
	e := newCloudEnv(t)
	p := e.start(t, e.mqttConnector(t))
	if p.hints == nil {
		t.Fatal("the Mosquitto connector gave no hint dispatcher")
	}
	f := newFleet(t, sigalg.ECDSAP256, sigalg.ECDSAP256, sigalg.ECDSAP256)
	admin := adminClient(t, p)
	f.register(t, admin)
	ce := &campaignEnv{p: p, f: f, admin: admin}
	for i, d := range f.devices {
		_, cert, err := onboard(t, p, d, f.ids[i])
		if err != nil {
			t.Fatal(err)
		}
		ce.certs = append(ce.certs, cert)
	}
	waitCloud(t, admin, f.ids, store.CloudActive)
	listeners := map[identity.ID]*hintListener{}
	index := map[identity.ID]int{}
	for i, id := range f.ids {
		listeners[id], index[id] = listenHints(t, e, id, ce.certs[i]), i
	}
	digest := sha256.Sum256([]byte("meter image 2.0.0"))
	if _, _, err := p.Store.PutFirmwareImage(t.Context(), store.FirmwareImage{Digest: digest, ProductID: "meter",
		Type: "app", Version: "2.0.0", SecurityCounter: 2, Size: 4096, UploadedAt: time.Now(), UploadedBy: "token:test"}); err != nil {
		t.Fatal(err)
	}
	ce.image = hex.EncodeToString(digest[:])

	c := ce.create(t, httpapi.CampaignRequest{Waves: "1,100%", HaltMinFinished: 1})
	rows, err := p.Store.ListCampaignDevices(t.Context(), c.ID, store.CampaignDeviceFilter{})
	if err != nil || len(rows) != 3 {
		t.Fatalf("campaign devices: %d, %v", len(rows), err)
	}
	var first identity.ID
	var rest []identity.ID
	for _, r := range rows {
		if r.Wave == 0 {
			first = r.Identity
		} else {
			rest = append(rest, r.Identity)
		}
	}
	created := listeners[first].hint(t, c.ID)
	waitHintsSent(t, p)
	for _, id := range rest {
		listeners[id].nothing(t)
	}

	// The hint carries no authority: the device asks over mutual TLS.
	i := index[first]
	if status, a, _ := ce.poll(t, i); status != http.StatusOK || a.CampaignID != c.ID {
		t.Fatalf("the hinted device's poll: %d %+v", status, a)
	}
	ce.mustReport(t, i, c.ID, ota.StateDownloading, ota.StateInstalled, ota.StateBooted)
	for _, id := range rest {
		if h := listeners[id].hint(t, c.ID); !h.At.After(created.At) {
			t.Fatalf("the second wave's hint is not newer than the first: %v, %v", h.At, created.At)
		}
	}
	waitHintsSent(t, p)
	listeners[first].nothing(t) // finished: not hinted again

	// Pause and resume: the devices still pending are hinted anew.
	ctx := context.Background()
	if _, err := admin.CampaignAction(ctx, c.ID, "pause", "check"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CampaignAction(ctx, c.ID, "resume", "go on"); err != nil {
		t.Fatal(err)
	}
	for _, id := range rest {
		listeners[id].hint(t, c.ID)
	}
	waitHintsSent(t, p)
	listeners[first].nothing(t)
}
