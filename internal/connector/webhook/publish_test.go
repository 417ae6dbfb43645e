package webhook

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/identity"
)

// tlsConnector is a connector posting to a local HTTPS receiver.
func tlsConnector(t *testing.T, h http.Handler, key []byte) *Connector {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	c, err := New(Config{URL: srv.URL, Secret: key, Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPublish(t *testing.T) {
	rec := &receiver{}
	conn := tlsConnector(t, rec, secret)
	at := time.Date(2026, 12, 2, 8, 0, 0, 123456000, time.FixedZone("CET", 3600))
	id := identity.ID{7, 7, 7}
	suspended := connector.Event{ID: connector.EventID("webhook", 42), Seq: 42, Kind: "device.suspended", Time: at,
		Identity: id, ProductID: "sensor-v1", Detail: "under investigation"}
	renewed := connector.Event{ID: connector.EventID("webhook", 43), Seq: 43, Kind: "device.renewed", Time: at,
		Identity: id, Serial: [16]byte{0xab, 1}}
	for _, e := range []connector.Event{suspended, suspended, renewed} {
		if err := conn.Publish(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	if rec.err != nil || len(rec.events) != 3 {
		t.Fatalf("receiver: %d events, verify error %v", len(rec.events), rec.err)
	}
	if rec.ids[0] != suspended.ID || rec.ids[1] != suspended.ID || rec.ids[2] != renewed.ID {
		t.Fatalf("Webhook-Id %v, want the events' IDs, the same for a redelivery", rec.ids)
	}
	want := `{"type":"device.suspended","id":"` + suspended.ID + `","time":"2026-12-02T07:00:00.123456Z","seq":42,` +
		`"device":{"identity":"` + id.String() + `","product":"sensor-v1"},"detail":"under investigation"}`
	if rec.events[0] != want {
		t.Fatalf("body\n%s\nwant\n%s", rec.events[0], want)
	}
	var got DeviceEvent
	if err := json.Unmarshal([]byte(rec.events[2]), &got); err != nil {
		t.Fatal(err)
	}
	if got.CertificateSerial != "ab010000000000000000000000000000" || got.Device.Product != "" || got.Detail != "" || got.Seq != 43 {
		t.Fatalf("renewal body %s", rec.events[2])
	}
}

func TestPublishWrongSecretFailsVerification(t *testing.T) {
	rec := &receiver{}
	conn := tlsConnector(t, rec, []byte("not-the-receivers-secret"))
	e := connector.Event{ID: connector.EventID("webhook", 1), Seq: 1, Kind: "device.revoked", Time: time.Now(), Identity: identity.ID{1}}
	if err := conn.Publish(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(rec.err, ErrInvalidSignature) {
		t.Fatalf("receiver's Verify = %v, want ErrInvalidSignature", rec.err)
	}
}

func TestPublishStatuses(t *testing.T) {
	e := connector.Event{ID: connector.EventID("webhook", 9), Seq: 9, Kind: "device.resumed", Time: time.Now(), Identity: identity.ID{2}}
	for _, c := range []struct {
		status    int
		wantErr   bool
		permanent bool
	}{
		{200, false, false}, {202, false, false},
		{500, true, false}, {502, true, false}, {429, true, false}, {408, true, false},
		{400, true, true}, {403, true, true}, {410, true, true}, {301, true, true},
	} {
		t.Run(strconv.Itoa(c.status), func(t *testing.T) {
			rec := &receiver{statuses: []int{c.status}}
			err := tlsConnector(t, rec, secret).Publish(t.Context(), e)
			if (err != nil) != c.wantErr || errors.Is(err, connector.ErrPermanent) != c.permanent {
				t.Fatalf("Publish answered %d = %v, want error %v permanent %v", c.status, err, c.wantErr, c.permanent)
			}
		})
	}
	t.Run("no ID", func(t *testing.T) {
		rec := &receiver{}
		noID := e
		noID.ID = ""
		err := tlsConnector(t, rec, secret).Publish(t.Context(), noID)
		if !errors.Is(err, connector.ErrPermanent) || len(rec.events) != 0 {
			t.Fatalf("Publish without an ID = %v with %d requests, want ErrPermanent and none", err, len(rec.events))
		}
	})
}
