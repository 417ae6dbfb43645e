package mosquitto_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/connector/mosquitto"
	"github.com/hallmark-iot/hallmark/internal/identity"
)

// Update hints over a real Mosquitto (docs/ota.md, "Notification over
// MQTT"). "Nothing else arrived" is shown without waiting: the device
// publishes a marker to its own update topic after the hint was sent; a
// broker delivers a client's messages in the order it took them, so a
// hint that had reached the device would arrive before the marker.

func updateTopic(id identity.ID) string { return mosquitto.UpdateTopic("devices/", id.String()) }

// subscribe connects d and subscribes it to topic.
func subscribe(t *testing.T, url string, e *env, d device, topic string) (*mosquitto.Session, <-chan []byte, error) {
	t.Helper()
	s, err := mosquitto.Connect(t.Context(), url, d.cert, e.roots)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	msgs, err := s.Subscribe(t.Context(), topic)
	return s, msgs, err
}

// next is the next message, failing the test if none comes in a while
// (a hang guard, not a timing assertion).
func next(t *testing.T, msgs <-chan []byte) []byte {
	t.Helper()
	select {
	case m, ok := <-msgs:
		if !ok {
			t.Fatal("the subscription ended")
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message")
	}
	return nil
}

// onlyMarker publishes a marker to d's own update topic and fails the
// test if anything arrives on msgs before it.
func onlyMarker(t *testing.T, s *mosquitto.Session, msgs <-chan []byte, d device, what string) {
	t.Helper()
	marker := []byte("marker " + d.id.String())
	if err := s.Publish(t.Context(), updateTopic(d.id), marker); err != nil {
		t.Fatalf("marker: %v", err)
	}
	if got := next(t, msgs); !bytes.Equal(got, marker) {
		t.Fatalf("%s received %q", what, got)
	}
}

func notify(t *testing.T, n connector.Notifier, notices ...connector.Notice) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if sent, err := n.Notify(ctx, notices); err != nil || sent != len(notices) {
		t.Fatalf("notify: sent %d of %d: %v", sent, len(notices), err)
	}
}

// TestUpdateHints: the connector publishes a device's hint to that
// device's update topic only; the device receives it, and so does a
// later connection of the device (retained); another device neither
// receives it nor can subscribe to it, by name or by wildcard.
func TestUpdateHints(t *testing.T) {
	e := newEnv(t)
	a, b := e.newDevice(t), e.newDevice(t)
	e.register(t, a)
	e.register(t, b)
	url := e.broker.DeviceURL()
	_, toA, err := subscribe(t, url, e, a, updateTopic(a.id))
	if err != nil {
		t.Fatalf("a device subscribing to its own update topic: %v", err)
	}
	sb, toB, err := subscribe(t, url, e, b, updateTopic(b.id))
	if err != nil {
		t.Fatal(err)
	}

	hint := connector.Hint{Campaign: "cmp_00112233445566aa", At: time.Now().UTC().Truncate(time.Millisecond)}
	notify(t, e.conn, connector.Notice{Identity: a.id, Hint: hint})
	got, err := connector.ParseHint(next(t, toA))
	if err != nil || got != hint {
		t.Fatalf("a's hint: %+v, %v", got, err)
	}
	onlyMarker(t, sb, toB, b, "another device")

	// Retained: a connection made after the hint still gets it.
	_, again, err := subscribe(t, url, e, a, updateTopic(a.id))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := connector.ParseHint(next(t, again)); err != nil || got != hint {
		t.Fatalf("a's retained hint: %+v, %v", got, err)
	}

	t.Run("attacker", func(t *testing.T) {
		// b asks for a's topic by name: refused.
		_, _, err := subscribe(t, url, e, b, updateTopic(a.id))
		wantRefused(t, err)
		// By wildcard: refused, or granted and nothing of a's delivered
		// (a's retained hint would come first).
		for _, filter := range []string{"devices/+/update", "devices/#", "#"} {
			s, msgs, err := subscribe(t, url, e, b, filter)
			if err != nil {
				wantRefused(t, err)
				continue
			}
			onlyMarker(t, s, msgs, b, "a wildcard subscription of another device")
		}
	})
}

// TestUpdateHintsPatternMode: with the pattern ACL (no per-device broker
// state) the admin may publish hints and a device reads only its own.
func TestUpdateHintsPatternMode(t *testing.T) {
	e := newEnforcedEnv(t, true)
	conn := e.connector(t, mosquitto.ModePattern, 0)
	a, b := e.newDevice(t), e.newDevice(t)
	url := e.broker.DeviceURL()
	_, toA, err := subscribe(t, url, e.env, a, updateTopic(a.id))
	if err != nil {
		t.Fatal(err)
	}
	hint := connector.Hint{Campaign: "cmp_00112233445566bb", At: time.Now().UTC().Truncate(time.Millisecond)}
	notify(t, conn, connector.Notice{Identity: a.id, Hint: hint})
	if got, err := connector.ParseHint(next(t, toA)); err != nil || got != hint {
		t.Fatalf("a's hint: %+v, %v", got, err)
	}
	_, _, err = subscribe(t, url, e.env, b, updateTopic(a.id))
	if err != nil {
		wantRefused(t, err)
	}
	s, msgs, err := subscribe(t, url, e.env, b, "devices/+/update")
	if err == nil {
		onlyMarker(t, s, msgs, b, "a wildcard subscription of another device")
	}
}

// BenchmarkNotify measures hints/s through one admin connection to a
// real broker (dynamic-security mode), in the dispatcher's batches of
// 500: the time a wave of 100,000 devices takes to be hinted is
// 100,000 / (hints/s).
func BenchmarkNotify(b *testing.B) {
	e := newEnv(b)
	batch := make([]connector.Notice, 500)
	for i := range batch {
		batch[i] = connector.Notice{Identity: identity.ID{byte(i >> 8), byte(i)},
			Hint: connector.Hint{Campaign: "cmp_00112233445566aa", At: time.Now()}}
	}
	ctx := context.Background()
	if _, err := e.conn.Notify(ctx, batch[:1]); err != nil { // the role, the connection
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if sent, err := e.conn.Notify(ctx, batch); err != nil || sent != len(batch) {
			b.Fatalf("sent %d: %v", sent, err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "hints/s")
}
