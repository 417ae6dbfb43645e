package mosquitto

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/hallmark-iot/hallmark/internal/connector"
)

// Update hints (docs/ota.md, "Notification over MQTT"). The connector
// publishes each device's hint to the device's update topic,
// <TopicPrefix><identity>/update, inside the tree the device's ACL gives
// it: the device may subscribe there, and no other device may read it.
//
// A hint is published with QoS 1, so that the connector learns that the
// broker took it (or refused it: reason 0x87), and retained, so that a
// device whose connection was down when it was sent finds it when it
// subscribes again. It carries a message expiry (HintExpiry): the broker
// drops it by itself once it is stale, so the platform need not clear
// each device's hint when its part in the campaign ends, which would
// cost a second publish per device. A stale hint costs the device one
// poll, and the agent ignores a hint it acted on already.

const (
	// UpdateSubtopic ends a device's update topic.
	UpdateSubtopic = "update"
	// HintRole is the dynamic-security role that lets the connector's
	// admin publish hints: publishClientSend on <TopicPrefix>+/update.
	HintRole = "hallmark-hints"
	// DefaultHintExpiry is how long the broker keeps a retained hint: a
	// day, long past any poll interval, after which the device has
	// polled anyway.
	DefaultHintExpiry = 24 * time.Hour
)

var _ connector.Notifier = (*Connector)(nil)

// UpdateTopic is the topic a device with identity id (hex) receives its
// update hints on, under prefix.
func UpdateTopic(prefix, id string) string {
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return prefix + id + "/" + UpdateSubtopic
}

// Notify publishes each notice's hint, retained, to its device's update
// topic, one after another, and returns how many the broker took. It
// needs the admin listener (BrokerURL). In ModeDynsec it first gives its
// own admin client the HintRole, once; in ModePattern the broker's ACL
// file must let the admin write <TopicPrefix>+/update (broker.ACL does).
// A publish the broker refuses wraps ErrNotAuthorized and
// connector.ErrPermanent.
func (c *Connector) Notify(ctx context.Context, notices []connector.Notice) (int, error) {
	if c.cfg.BrokerURL == "" {
		return 0, fmt.Errorf("update hints need the broker's admin listener (no broker URL configured): %w", connector.ErrPermanent)
	}
	if err := c.allowHints(ctx); err != nil {
		return 0, fmt.Errorf("update hints: %w", err)
	}
	expiry := uint32(c.cfg.HintExpiry / time.Second)
	c.mu.Lock()
	defer c.mu.Unlock()
	client, err := c.connectLocked(ctx)
	if err != nil {
		return 0, fmt.Errorf("update hints: %w", err)
	}
	pubCtx, cancel := untilClosed(ctx, client)
	defer cancel()
	for i, n := range notices {
		topic := UpdateTopic(c.cfg.TopicPrefix, n.Identity.String())
		resp, err := client.Publish(pubCtx, &paho.Publish{Topic: topic, QoS: 1, Retain: true, Payload: n.Hint.Marshal(),
			Properties: &paho.PublishProperties{MessageExpiry: &expiry}})
		if resp != nil && resp.ReasonCode >= 0x80 {
			return i, fmt.Errorf("update hint to %s: reason %#x: %w: %w", topic, resp.ReasonCode, ErrNotAuthorized, connector.ErrPermanent)
		}
		if err != nil {
			c.dropLocked()
			return i, fmt.Errorf("update hint to %s: %w", topic, err)
		}
	}
	return len(notices), nil
}

// allowHints gives the admin client the HintRole, in ModeDynsec with an
// admin user name, once per connector: the role is created with its ACL,
// and added to the admin client only when it lacks it (see Register on
// Mosquitto 2.0.11's answer to a role added twice). Granting itself a
// narrow publish right is no escalation: the dynamic-security admin may
// change every role already.
func (c *Connector) allowHints(ctx context.Context) error {
	c.mu.Lock()
	done := c.hintsAllowed
	c.mu.Unlock()
	if done || c.cfg.Mode == ModePattern || c.cfg.AdminUser == "" {
		return nil
	}
	topic := UpdateTopic(c.cfg.TopicPrefix, "+")
	acl := map[string]any{"acltype": "publishClientSend", "topic": topic, "allow": true, "priority": 0}
	resp, err := c.run(ctx, []command{
		{"command": "createRole", "rolename": HintRole, "acls": []map[string]any{acl}},
		{"command": "getClient", "username": c.cfg.AdminUser},
	}, "already")
	if err != nil {
		return fmt.Errorf("allow the admin to publish hints: %w", err)
	}
	var repair []command
	if resp.Responses[0].Error != "" { // the role existed: make sure of its ACL
		repair = append(repair, command{"command": "addRoleACL", "rolename": HintRole, "acltype": "publishClientSend",
			"topic": topic, "allow": true, "priority": 0})
	}
	if !hasRole(resp, HintRole) {
		repair = append(repair, command{"command": "addClientRole", "username": c.cfg.AdminUser, "rolename": HintRole})
	}
	if len(repair) > 0 {
		if _, err := c.run(ctx, repair, "already"); err != nil {
			// The plugin disconnects a client whose roles change, the
			// admin included, often before acknowledging the command:
			// ask again on a new connection whether the role is there.
			resp, again := c.run(ctx, []command{{"command": "getClient", "username": c.cfg.AdminUser}}, "")
			if again != nil || !hasRole(resp, HintRole) {
				return fmt.Errorf("allow the admin to publish hints: %w", err)
			}
		}
	}
	c.mu.Lock()
	c.hintsAllowed = true
	c.mu.Unlock()
	return nil
}

// Subscribe subscribes the device's session to topic (its update topic:
// UpdateTopic; a filter with wildcards is taken as the broker takes it)
// and returns the messages that arrive on it, until the
// connection ends, when the channel is closed. A broker refusing the
// subscription (another device's topic) gives an error wrapping
// ErrNotAuthorized.
//
// The subscription is QoS 0, so that paho never acknowledges from its
// own goroutine (see noPinger); a hint lost with a connection is
// delivered again, retained, when the device subscribes anew. Messages
// beyond the channel's small buffer are dropped: a hint is a wake-up,
// and one waiting suffices.
func (s *Session) Subscribe(ctx context.Context, topic string) (<-chan []byte, error) {
	msgs := make(chan []byte, 4)
	remove := s.client.AddOnPublishReceived(func(p paho.PublishReceived) (bool, error) {
		if matches(topic, p.Packet.Topic) && len(p.Packet.Payload) <= connector.MaxHint {
			select {
			case msgs <- p.Packet.Payload:
			default:
			}
		}
		return true, nil
	})
	subCtx, cancel := untilClosed(ctx, s.client)
	defer cancel()
	ack, err := s.client.Subscribe(subCtx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 0}}})
	if ack != nil && len(ack.Reasons) > 0 && ack.Reasons[0] >= 0x80 {
		remove()
		return nil, fmt.Errorf("subscribe to %q: reason %#x: %w", topic, ack.Reasons[0], ErrNotAuthorized)
	}
	if err != nil {
		remove()
		return nil, fmt.Errorf("subscribe to %q: %w", topic, err)
	}
	out := make(chan []byte)
	go func() {
		defer close(out)
		defer remove()
		for {
			select {
			case <-s.client.Done():
				return
			case m := <-msgs:
				select {
				case out <- m:
				case <-s.client.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// matches reports whether topic matches the subscription filter (MQTT's
// + and # wildcards).
func matches(filter, topic string) bool {
	fs, ts := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, f := range fs {
		switch {
		case f == "#":
			return true
		case i >= len(ts):
			return false
		case f != "+" && f != ts[i]:
			return false
		}
	}
	return len(fs) == len(ts)
}
