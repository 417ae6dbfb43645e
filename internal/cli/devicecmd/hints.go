package devicecmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/connector/mosquitto"
)

// Update hints in `device run` (docs/ota.md, "Notification over MQTT"):
// besides polling, the device keeps an MQTT connection to its cloud
// broker with its certificate, subscribed to its own update topic
// (PREFIX<identity>/update, inside the tree its broker ACL gives it). A
// hint there makes the loop poll at once instead of at the end of its
// wait. A hint decides nothing: the poll over mutual TLS does, and the
// image is verified by the ROM's rules. Polling stays the fallback: a
// broker that cannot be reached only costs the wait until the next poll.

// Notify modes of `device run`.
const (
	notifyAuto = "auto" // on when the credentials name an mqtts:// endpoint
	notifyOn   = "on"
	notifyOff  = "off"
)

// hintEvent is what the hint watcher tells the run loop: a hint to act
// on, the subscription made, or a failure to connect or subscribe.
type hintEvent struct {
	hint       *connector.Hint
	subscribed string // the topic, once subscribed
	err        error
}

// hintWatcher keeps the device subscribed to its update topic.
type hintWatcher struct {
	statePath   string
	endpoint    string // "": the credentials' cloud endpoint
	brokerCA    string
	topicPrefix string
	// maxSession bounds a connection's life: without keep-alive (see
	// mosquitto.Session) a silently dead connection is noticed only when
	// it is replaced, so it is replaced at least this often.
	maxSession time.Duration
	streams    *cmdline.Streams
}

// notifyEndpoint decides whether `device run` watches for hints, and
// where: mode on or auto with an mqtts:// endpoint.
func notifyEndpoint(mode, endpoint, cloudEndpoint string) (string, bool, error) {
	if endpoint == "" {
		endpoint = cloudEndpoint
	}
	switch mode {
	case notifyOff:
		return "", false, nil
	case notifyAuto:
		return endpoint, strings.HasPrefix(endpoint, "mqtts://"), nil
	case notifyOn:
		if !strings.HasPrefix(endpoint, "mqtts://") {
			return "", false, errors.New("run: --notify on needs an mqtts:// broker: the credentials name none; use --broker URL")
		}
		return endpoint, true, nil
	}
	return "", false, cmdline.Usagef("--notify %q: want auto, on or off", mode)
}

// run connects, subscribes and forwards hints to events until ctx ends,
// connecting again after a failure (with backoff) or after maxSession.
// A hint equal to the last one forwarded (the retained hint delivered
// again on a new connection) is not forwarded again.
func (w *hintWatcher) run(ctx context.Context, events chan<- hintEvent) {
	var last []byte
	failures := 0
	for ctx.Err() == nil {
		err := w.session(ctx, events, &last)
		if ctx.Err() != nil {
			return
		}
		wait := time.Duration(0)
		if err != nil {
			failures++
			if failures == 1 {
				send(ctx, events, hintEvent{err: err})
			}
			wait = connector.BackoffWith(failures, time.Second, 5*time.Minute)
		} else {
			failures = 0
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// session runs one connection: it returns nil when it ended by age or
// because the broker closed it after a working subscription.
func (w *hintWatcher) session(ctx context.Context, events chan<- hintEvent, last *[]byte) error {
	_, held, cert, err := onboardedDevice(w.statePath, "run")
	if err != nil {
		return err
	}
	endpoint := w.endpoint
	if endpoint == "" {
		endpoint = held.CloudEndpoint
	}
	roots, err := brokerRoots(w.streams, held.TrustBundle, w.brokerCA)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, w.maxSession)
	defer cancel()
	s, err := mosquitto.Connect(ctx, endpoint, *cert, roots)
	if err != nil {
		return fmt.Errorf("update hints: %w", publishError(err, endpoint, w.endpoint == ""))
	}
	defer s.Close()
	topic := mosquitto.UpdateTopic(w.topicPrefix, cert.Leaf.Subject.CommonName)
	msgs, err := s.Subscribe(ctx, topic)
	if err != nil {
		return fmt.Errorf("update hints: %w", err)
	}
	send(ctx, events, hintEvent{subscribed: topic})
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-msgs:
			if !ok {
				return nil
			}
			h, err := connector.ParseHint(m)
			if err != nil || bytes.Equal(m, *last) {
				continue // not a hint (a cleared retained message), or seen
			}
			*last = m
			send(ctx, events, hintEvent{hint: &h})
		}
	}
}

// send delivers ev unless ctx ends first.
func send(ctx context.Context, events chan<- hintEvent, ev hintEvent) {
	select {
	case events <- ev:
	case <-ctx.Done():
	}
}

// waitOrHint waits for wait, or until a hint arrives (then it returns
// early), printing what the watcher reports. It returns false when ctx
// ended. events may be nil (no watcher).
func waitOrHint(ctx context.Context, s *cmdline.Streams, wait time.Duration, events <-chan hintEvent) bool {
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case ev := <-events:
			switch {
			case ev.err != nil:
				fmt.Fprintf(s.Err, "%v (polling goes on)\n", ev.err)
			case ev.subscribed != "":
				fmt.Fprintf(s.Out, "listening for update hints on %s\n", cmdline.Safe(ev.subscribed))
			case ev.hint != nil:
				fmt.Fprintf(s.Out, "update hint for campaign %s: polling now\n", ev.hint.Campaign)
				return true
			}
		}
	}
}

// startHints starts the hint watcher of `device run` when notify asks
// for it (never with off set: --once or --no-update), and returns its
// events (nil without a watcher) and the function that stops it.
func startHints(ctx context.Context, s *cmdline.Streams, statePath, notify, broker, brokerCA, topicPrefix string,
	interval time.Duration, off bool) (<-chan hintEvent, func(), error) {
	if _, err := url.Parse(broker); err != nil || (broker != "" && !strings.HasPrefix(broker, "mqtts://")) {
		return nil, nil, cmdline.Usagef("--broker %q: want mqtts://HOST:PORT", broker)
	}
	if _, _, err := notifyEndpoint(notify, "mqtts://check", ""); err != nil {
		return nil, nil, err // an unknown mode
	}
	if off {
		notify = notifyOff
	}
	cloud := ""
	if notify != notifyOff {
		if _, held, _, err := onboardedDevice(statePath, "run"); err == nil {
			cloud = held.CloudEndpoint
		}
	}
	_, on, err := notifyEndpoint(notify, broker, cloud)
	if err != nil || !on || off {
		return nil, func() {}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	events := make(chan hintEvent, 4)
	w := &hintWatcher{statePath: statePath, endpoint: broker, brokerCA: brokerCA, topicPrefix: topicPrefix,
		maxSession: interval, streams: s}
	done := make(chan struct{})
	go func() { defer close(done); w.run(ctx, events) }()
	return events, func() { cancel(); <-done }, nil
}
