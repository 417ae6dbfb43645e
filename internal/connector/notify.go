package connector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
)

// Update hints (docs/ota.md, "Notification over MQTT"): when a campaign
// offers its update to more devices, the platform may tell each of them
// so on its own topic, so that it polls at once instead of at its next
// poll interval. A hint carries no authority: the device still fetches
// its assignment, the image and everything it decides on over mutual TLS
// from the platform, and verifies the image with its ROM's rules. A
// forged, replayed or lost hint costs one poll, or the wait until the
// next one.

// Hint is what a device's update topic carries.
type Hint struct {
	// Campaign names the campaign that offers the device an update.
	Campaign string `json:"campaign"`
	// At is when the campaign last changed state (a wave opened, it was
	// created or resumed): two hints of one campaign differ when an offer
	// is new, so that a device can ignore one it acted on already (a
	// retained hint delivered again when it reconnects).
	At time.Time `json:"at"`
}

// MaxHint bounds a hint a device parses: a campaign ID and a time fit in
// far less.
const MaxHint = 256

// ErrBadHint refuses a message on the update topic that is not a hint.
var ErrBadHint = errors.New("not an update hint")

var campaignID = regexp.MustCompile(`^cmp_[0-9a-f]{16}$`)

// Marshal encodes the hint as a device receives it.
func (h Hint) Marshal() []byte {
	b, _ := json.Marshal(struct {
		Campaign string `json:"campaign"`
		At       string `json:"at"`
	}{h.Campaign, h.At.UTC().Format(time.RFC3339Nano)})
	return b
}

// ParseHint reads a hint: a JSON object of at most MaxHint bytes with a
// campaign ID and a time, and nothing else. An empty message is the
// broker delivering a cleared retained hint, not a hint; it is
// ErrBadHint too.
func ParseHint(data []byte) (Hint, error) {
	if len(data) == 0 || len(data) > MaxHint {
		return Hint{}, fmt.Errorf("%w: %d bytes", ErrBadHint, len(data))
	}
	var h Hint
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return Hint{}, fmt.Errorf("%w: %v", ErrBadHint, err)
	}
	if dec.More() {
		return Hint{}, fmt.Errorf("%w: trailing data", ErrBadHint)
	}
	if !campaignID.MatchString(h.Campaign) {
		return Hint{}, fmt.Errorf("%w: campaign %q is not a campaign ID", ErrBadHint, h.Campaign)
	}
	if h.At.IsZero() {
		return Hint{}, fmt.Errorf("%w: no time", ErrBadHint)
	}
	return h, nil
}

// Notice is one hint to one device.
type Notice struct {
	Identity identity.ID
	Hint     Hint
}

// Notifier is a connector that can also send devices update hints on
// their own channel (the Mosquitto connector: a retained message on the
// device's update topic). Connectors without such a channel (webhook)
// do not implement it and are not asked. Found by type assertion.
type Notifier interface {
	// Name is the connector's name (Connector.Name).
	Name() string
	// Notify sends each notice, in order, and returns how many it sent
	// before an error; the caller retries from there. Sending a notice
	// again must do no harm. An error wrapping ErrPermanent says no
	// retry can help (the broker refuses the platform the topics).
	Notify(ctx context.Context, notices []Notice) (sent int, err error)
}
