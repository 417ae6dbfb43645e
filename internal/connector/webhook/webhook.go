// Package webhook owns the webhook connector: it tells a customer's HTTP
// endpoint about registered and deregistered devices, and every entry of
// the device event log (Publish), with a JSON event signed with
// HMAC-SHA256 the way Standard Webhooks (and Stripe) sign theirs, and
// gives receivers Verify to check such events.
//
// Delivery is at least once: a worker killed between the POST and
// recording its success sends the event again, with the same Webhook-Id,
// so a receiver dedupes on it.
package webhook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/identity"
)

// Event types.
const (
	EventRegistered   = "device.registered"
	EventDeregistered = "device.deregistered"
)

// MinSecretSize is the shortest accepted signing secret: 128 bits.
const MinSecretSize = 16

// Config configures a webhook connector.
type Config struct {
	// Name is the connector's name in jobs; default "webhook".
	Name string
	// URL receives the events: https, or http to a loopback address only.
	URL string
	// Secret is the HMAC key shared with the receiver; never logged.
	Secret []byte
	// Timeout bounds one request; default 10s.
	Timeout time.Duration
	// Client sends the requests; default a client that follows no
	// redirects. Now stamps events; default time.Now.
	Client *http.Client
	Now    func() time.Time
}

// Connector posts signed events. It is safe for concurrent use.
type Connector struct {
	name    string
	url     string
	secret  []byte
	timeout time.Duration
	client  *http.Client
	now     func() time.Time
}

var _ connector.Connector = (*Connector)(nil)

// New checks cfg and returns a connector.
func New(cfg Config) (*Connector, error) {
	if cfg.Name == "" {
		cfg.Name = "webhook"
	}
	if err := checkURL(cfg.URL); err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	if len(cfg.Secret) < MinSecretSize {
		return nil, fmt.Errorf("webhook: secret has %d bytes, want at least %d", len(cfg.Secret), MinSecretSize)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Connector{name: cfg.Name, url: cfg.URL, secret: bytes.Clone(cfg.Secret),
		timeout: cfg.Timeout, client: cfg.Client, now: cfg.Now}, nil
}

// checkURL admits https URLs and plain http to loopback, where nothing
// crosses a network.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("URL: %w", err)
	}
	if u.Host == "" || u.User != nil {
		return fmt.Errorf("URL %q: want scheme://host/path without user info", u.Redacted())
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
	}
	return fmt.Errorf("URL %q: want https (http only to a loopback address)", u.Redacted())
}

// Name implements connector.Connector.
func (c *Connector) Name() string { return c.name }

// Event is the JSON body of a webhook request.
type Event struct {
	Type   string      `json:"type"`
	ID     string      `json:"id"`
	Time   time.Time   `json:"time"`
	Device EventDevice `json:"device"`
}

// EventDevice is the device an event is about; deregistration events
// carry only the identity.
type EventDevice struct {
	Identity      identity.ID `json:"identity"`
	Product       string      `json:"product,omitempty"`
	CloudEndpoint string      `json:"cloud_endpoint,omitempty"`
	Certificate   string      `json:"certificate,omitempty"` // PEM
}

// Register posts a device.registered event. Its ID is derived from the
// connector, the identity and the certificate, so every delivery of one
// registration carries the same ID, and a renewal a new one.
func (c *Connector) Register(ctx context.Context, d connector.Device) error {
	certDigest := sha256.Sum256(d.Certificate)
	ev := Event{
		Type: EventRegistered,
		ID:   c.eventID("register", d.Identity, certDigest[:]),
		Device: EventDevice{
			Identity: d.Identity, Product: d.ProductID, CloudEndpoint: d.CloudEndpoint,
			Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d.Certificate})),
		},
	}
	return c.send(ctx, ev)
}

// Deregister posts a device.deregistered event. The connector interface
// gives only the identity; a device is revoked once, so connector, kind
// and identity make a stable ID.
func (c *Connector) Deregister(ctx context.Context, id identity.ID) error {
	return c.send(ctx, Event{Type: EventDeregistered, ID: c.eventID("deregister", id, nil), Device: EventDevice{Identity: id}})
}

func (c *Connector) eventID(kind string, id identity.ID, extra []byte) string {
	h := sha256.New()
	for _, part := range [][]byte{[]byte("hallmark webhook event v1"), []byte(c.name), []byte(kind), id[:], extra} {
		h.Write(strconv.AppendInt(nil, int64(len(part)), 10))
		h.Write([]byte{':'})
		h.Write(part)
	}
	return "evt_" + hex.EncodeToString(h.Sum(nil)[:16])
}

func (c *Connector) send(ctx context.Context, ev Event) error {
	now := c.now()
	ev.Time = now.UTC().Truncate(time.Second)
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("webhook %s: encode event: %w", c.name, err)
	}
	return c.post(ctx, ev.Type, ev.ID, now, body)
}

// post sends one signed body: every request of the connector, a
// registration's or a device event's (Publish), goes through it.
func (c *Connector) post(ctx context.Context, typ, id string, now time.Time, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook %s: %w: %w", c.name, err, connector.ErrPermanent)
	}
	ts := now.Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "hallmark-webhook/1")
	req.Header.Set(HeaderID, id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(c.secret, id, ts, body))
	resp, err := c.client.Do(req)
	if err != nil {
		// Network errors and timeouts are retryable. The URL is left out:
		// receivers often put an access token in its path or query.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("webhook %s: %s %s: post: %w", c.name, typ, id, err)
	}
	// Drain a little so the connection can be reused; never more.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return classify(resp.StatusCode, fmt.Sprintf("webhook %s: %s %s", c.name, typ, id))
}

// classify maps a response status: 2xx succeeded; 408, 429 and 5xx are
// worth retrying; any other status (4xx, and 3xx since redirects are not
// followed) needs a person to fix something.
func classify(status int, what string) error {
	switch {
	case status >= 200 && status < 300:
		return nil
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests, status >= 500:
		return fmt.Errorf("%s: server answered %d", what, status)
	}
	return fmt.Errorf("%s: server answered %d: %w", what, status, connector.ErrPermanent)
}
