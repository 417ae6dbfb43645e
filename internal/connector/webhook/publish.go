package webhook

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/identity"
)

// DeviceEvent is the JSON body of a device event (Publish): one entry of
// the platform's event log (docs/connectors.md, "Device events").
type DeviceEvent struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	// Time is when the event happened; Webhook-Timestamp is when this
	// delivery was sent.
	Time   time.Time         `json:"time"`
	Seq    int64             `json:"seq"`
	Device DeviceEventDevice `json:"device"`
	// CertificateSerial is the certificate the event is about, hex.
	CertificateSerial string `json:"certificate_serial,omitempty"`
	Detail            string `json:"detail"`
}

// DeviceEventDevice is the device a device event is about.
type DeviceEventDevice struct {
	Identity identity.ID `json:"identity"`
	Product  string      `json:"product,omitempty"`
}

var _ connector.EventSink = (*Connector)(nil)

// Publish posts one device event, signed as Register's are, so Verify
// checks it. Its ID is e.ID, the same in every delivery of the event; a
// status the receiver should not be asked again for (see classify) is
// connector.ErrPermanent.
func (c *Connector) Publish(ctx context.Context, e connector.Event) error {
	if e.ID == "" || len(e.ID) > maxIDSize {
		return fmt.Errorf("webhook %s: event %d has no usable ID: %w", c.name, e.Seq, connector.ErrPermanent)
	}
	body, err := json.Marshal(eventBody(e))
	if err != nil {
		return fmt.Errorf("webhook %s: encode event %d: %w: %w", c.name, e.Seq, err, connector.ErrPermanent)
	}
	return c.post(ctx, e.Kind, e.ID, c.now(), body)
}

// eventBody is e as receivers read it.
func eventBody(e connector.Event) DeviceEvent {
	b := DeviceEvent{Type: e.Kind, ID: e.ID, Time: e.Time.UTC(), Seq: e.Seq,
		Device: DeviceEventDevice{Identity: e.Identity, Product: e.ProductID}, Detail: e.Detail}
	if e.Serial != ([16]byte{}) {
		b.CertificateSerial = hex.EncodeToString(e.Serial[:])
	}
	return b
}
