package mosquitto

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/identity"
)

// Mode is how the connector gives devices access to the broker.
type Mode string

const (
	// ModeDynsec registers each device with the dynamic-security plugin:
	// a client and a role per device. For fleets of thousands: every
	// change rewrites the plugin's whole file (docs/connectors.md).
	ModeDynsec Mode = "dynsec"
	// ModePattern keeps no per-device state in the broker: one pattern
	// ACL and the broker's CRL. Register checks the certificate only;
	// Deregister disconnects the device, if BrokerURL names a
	// dynamic-security admin listener to do it through.
	ModePattern Mode = "pattern"
)

// Config configures a Connector.
type Config struct {
	// Mode is ModeDynsec (the default) or ModePattern.
	Mode Mode
	// BrokerURL is the admin listener, mqtts://host:port. Required in
	// ModeDynsec; in ModePattern it is used to disconnect deregistered
	// devices, and without it they are not disconnected.
	BrokerURL string
	// TLS holds the roots that verify the broker and, if the broker
	// authenticates the admin by certificate, the admin's certificate.
	TLS *tls.Config
	// AdminUser and AdminPassword log in as the dynamic-security admin.
	AdminUser, AdminPassword string
	// TopicPrefix is the root of every device's topic tree ("devices/").
	TopicPrefix string
	// RekickAfter (ModePattern) disconnects a deregistered device a
	// second time this long after the first: a device that reconnected
	// before the broker's CRL listed it keeps a working connection in
	// pattern mode, and the second kick ends it once the CRL is there.
	// Set it above the CRL synchroniser's interval; 0 kicks once.
	RekickAfter time.Duration
	// HintExpiry is how long the broker keeps a device's retained update
	// hint (notify.go); default DefaultHintExpiry.
	HintExpiry time.Duration
}

// Connector registers devices with Mosquitto's dynamic-security plugin.
// It keeps one MQTT connection, opened on demand and reopened when lost,
// and sends one batch of commands at a time, so it is safe for concurrent
// use.
type Connector struct {
	cfg       Config
	mu        sync.Mutex
	client    *paho.Client
	responses chan []byte
	rekicks   *rekickQueue // nil unless ModePattern with RekickAfter
	// hintsAllowed is set once the admin may publish hints (notify.go).
	hintsAllowed bool
}

var _ connector.Connector = (*Connector)(nil)

// New checks cfg; it does not connect.
func New(cfg Config) (*Connector, error) {
	switch cfg.Mode {
	case "":
		cfg.Mode = ModeDynsec
	case ModeDynsec, ModePattern:
	default:
		return nil, fmt.Errorf("mosquitto connector: mode %q: want %s or %s", cfg.Mode, ModeDynsec, ModePattern)
	}
	if cfg.Mode == ModeDynsec || cfg.BrokerURL != "" {
		if err := validURL(cfg.BrokerURL); err != nil {
			return nil, fmt.Errorf("mosquitto connector: %w", err)
		}
	}
	if cfg.RekickAfter < 0 {
		return nil, errors.New("mosquitto connector: negative rekick delay")
	}
	if cfg.TLS == nil {
		cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.TopicPrefix == "" {
		cfg.TopicPrefix = "devices/"
	}
	if cfg.HintExpiry <= 0 {
		cfg.HintExpiry = DefaultHintExpiry
	}
	c := &Connector{cfg: cfg}
	if cfg.Mode == ModePattern && cfg.BrokerURL != "" && cfg.RekickAfter > 0 {
		c.rekicks = newRekickQueue(cfg.RekickAfter, c.kick)
	}
	return c, nil
}

// Name is "mosquitto".
func (c *Connector) Name() string { return "mosquitto" }

// Close stops the second kicks not yet made and closes the connection,
// if any.
func (c *Connector) Close() error {
	if c.rekicks != nil {
		c.rekicks.close()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropLocked()
	return nil
}

type command map[string]any

// maxResponse bounds a dynamic-security answer Hallmark will parse.
const maxResponse = 1 << 20

// Register creates the device's role with its ACLs and its client. What
// already exists is left as is; a role that existed already gets its ACLs
// added again, and a client its role, so that a half-done earlier attempt
// is completed.
//
// The role is created with its ACLs in one command: the plugin rewrites
// its whole JSON file after every changing command, so a new device costs
// two rewrites instead of six (docs/connectors.md has the figures).
func (c *Connector) Register(ctx context.Context, d connector.Device) error {
	if c.cfg.Mode == ModePattern {
		return c.registerPattern(d)
	}
	id := d.Identity.String()
	role := RolePrefix + id
	topic := deviceTopic(c.cfg.TopicPrefix, id)
	var acls []map[string]any
	for _, t := range []string{"publishClientSend", "publishClientReceive", "subscribePattern", "unsubscribePattern"} {
		acls = append(acls, map[string]any{"acltype": t, "topic": topic, "allow": true, "priority": 0})
	}
	cmds := []command{
		{"command": "createRole", "rolename": role, "acls": acls},
		{"command": "createClient", "username": id, "roles": []map[string]any{{"rolename": role}}},
		{"command": "getClient", "username": id},
	}
	resp, err := c.run(ctx, cmds, "already")
	if err != nil {
		return fmt.Errorf("register %s with mosquitto: %w", id, err)
	}
	var repair []command
	if resp.Responses[0].Error != "" { // the role existed: make sure of its ACLs
		for _, a := range acls {
			repair = append(repair, command{"command": "addRoleACL", "rolename": role, "acltype": a["acltype"],
				"topic": topic, "allow": true, "priority": 0})
		}
	}
	// Mosquitto 2.0.11 answers addClientRole for a role the client
	// already has with "Internal error", so add it only when missing: a
	// client left without its role by an earlier attempt.
	if !hasRole(resp, role) {
		repair = append(repair, command{"command": "addClientRole", "username": id, "rolename": role})
	}
	if len(repair) == 0 {
		return nil
	}
	if _, err := c.run(ctx, repair, "already"); err != nil {
		return fmt.Errorf("register %s with mosquitto: %w", id, err)
	}
	return nil
}

func hasRole(resp *response, role string) bool {
	for _, r := range resp.Responses {
		if r.Command != "getClient" {
			continue
		}
		for _, have := range r.Data.Client.Roles {
			if have.Rolename == role {
				return true
			}
		}
	}
	return false
}

// Deregister deletes the device's client, which disconnects it (Mosquitto
// 2.0 kicks a deleted client's connections), and its role; what does not
// exist counts as deleted. In ModePattern it disconnects the device only
// (kick).
//
// Deleting the client does not stop the device connecting again: the
// device listener authenticates by certificate (use_identity_as_username),
// which bypasses the plugin's client check, so a new connection is
// accepted and only its publishes and subscriptions are refused. The
// handshake is refused once the broker's CRL lists the certificate.
func (c *Connector) Deregister(ctx context.Context, identityID identity.ID) error {
	if c.cfg.Mode == ModePattern {
		return c.deregisterPattern(ctx, identityID)
	}
	id := identityID.String()
	cmds := []command{
		{"command": "deleteClient", "username": id},
		{"command": "deleteRole", "rolename": RolePrefix + id},
	}
	if _, err := c.run(ctx, cmds, "not found"); err != nil {
		return fmt.Errorf("deregister %s from mosquitto: %w", id, err)
	}
	return nil
}

type response struct {
	Responses []struct {
		Command         string `json:"command"`
		Error           string `json:"error"`
		CorrelationData string `json:"correlationData"`
		Data            struct {
			Client struct {
				Roles []struct {
					Rolename string `json:"rolename"`
				} `json:"roles"`
			} `json:"client"`
		} `json:"data"`
	} `json:"responses"`
}

// run sends cmds as one batch and waits for their responses. An error
// containing harmless (e.g. "already exists") counts as success; any
// other refusal wraps connector.ErrPermanent, since sending the same
// command again gets the same answer. Connection failures do not.
func (c *Connector) run(ctx context.Context, cmds []command, harmless string) (*response, error) {
	var nonce [12]byte
	_, _ = rand.Read(nonce[:])
	corr := hex.EncodeToString(nonce[:])
	for i := range cmds {
		cmds[i]["correlationData"] = fmt.Sprintf("%s-%d", corr, i)
	}
	body, err := json.Marshal(map[string]any{"commands": cmds})
	if err != nil {
		return nil, fmt.Errorf("encode commands: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	client, err := c.connectLocked(ctx)
	if err != nil {
		return nil, err
	}
	c.drainLocked()
	pubCtx, cancel := untilClosed(ctx, client)
	defer cancel()
	if _, err := client.Publish(pubCtx, &paho.Publish{Topic: ControlTopic, QoS: 1, Payload: body}); err != nil {
		c.dropLocked()
		return nil, fmt.Errorf("send commands: %w", err)
	}
	resp, err := c.awaitLocked(ctx, corr+"-0", client)
	if err != nil {
		return nil, err
	}
	var refused []string
	for _, r := range resp.Responses {
		if r.Error != "" && !strings.Contains(strings.ToLower(r.Error), harmless) {
			refused = append(refused, r.Command+": "+r.Error)
		}
	}
	if len(resp.Responses) != len(cmds) {
		return nil, fmt.Errorf("%d responses to %d commands: %w", len(resp.Responses), len(cmds), connector.ErrPermanent)
	}
	if len(refused) > 0 {
		return nil, fmt.Errorf("broker refused %s: %w", strings.Join(refused, "; "), connector.ErrPermanent)
	}
	return resp, nil
}

// awaitLocked waits for the response batch whose first correlation data
// is want, skipping stale answers to abandoned requests.
func (c *Connector) awaitLocked(ctx context.Context, want string, client *paho.Client) (*response, error) {
	for {
		select {
		case <-ctx.Done():
			c.dropLocked()
			return nil, fmt.Errorf("wait for dynamic-security response: %w", ctx.Err())
		case <-client.Done():
			c.dropLocked()
			return nil, errors.New("connection to broker lost waiting for response")
		case raw := <-c.responses:
			var r response
			if json.Unmarshal(raw, &r) != nil || len(r.Responses) == 0 || r.Responses[0].CorrelationData != want {
				continue
			}
			return &r, nil
		}
	}
}

func (c *Connector) drainLocked() {
	for {
		select {
		case <-c.responses:
		default:
			return
		}
	}
}

// connectLocked returns the open connection or opens one, logs in as the
// admin and subscribes to the response topic.
func (c *Connector) connectLocked(ctx context.Context) (*paho.Client, error) {
	if c.client != nil {
		select {
		case <-c.client.Done():
			c.dropLocked()
		default:
			return c.client, nil
		}
	}
	conn, err := dial(ctx, c.cfg.BrokerURL, c.cfg.TLS)
	if err != nil {
		return nil, err
	}
	responses := make(chan []byte, 16)
	client := paho.NewClient(paho.ClientConfig{
		Conn: conn, PingHandler: noPinger{},
		// The caller's deadline bounds every wait (the worker's job
		// timeout), not the library's default of 10 s per packet: a
		// broker whose dynamic-security file holds 100,000 devices takes
		// longer than that to acknowledge one change, and a benchmark or
		// an operator with a longer deadline must be able to wait for it.
		PacketTimeout: time.Hour,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(p paho.PublishReceived) (bool, error) {
				// Answers to Hallmark's small batches are small; a larger
				// payload is not one of them.
				if p.Packet.Topic == ResponseTopic && len(p.Packet.Payload) <= maxResponse {
					select {
					case responses <- p.Packet.Payload:
					default: // nobody waits for it: a stale answer
					}
				}
				return true, nil
			},
		},
	})
	// KeepAlive 0 and noPinger: see noPinger. A dead connection shows up
	// as a wait that ends with the caller's deadline, after which the
	// connection is dropped and reopened.
	connect := &paho.Connect{KeepAlive: 0, CleanStart: true, ClientID: "hallmark-" + randomSuffix()}
	if c.cfg.AdminUser != "" {
		connect.Username, connect.UsernameFlag = c.cfg.AdminUser, true
		connect.Password, connect.PasswordFlag = []byte(c.cfg.AdminPassword), true
	}
	ack, err := client.Connect(ctx, connect)
	if err != nil {
		conn.Close()
		if ack != nil && (ack.ReasonCode == 0x86 || ack.ReasonCode == 0x87) {
			return nil, fmt.Errorf("admin login refused (reason %#x): %w", ack.ReasonCode, connector.ErrPermanent)
		}
		return nil, fmt.Errorf("connect to broker: %w", err)
	}
	subCtx, cancel := untilClosed(ctx, client)
	defer cancel()
	if _, err := client.Subscribe(subCtx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: ResponseTopic, QoS: 0}}}); err != nil {
		_ = client.Disconnect(&paho.Disconnect{})
		return nil, fmt.Errorf("subscribe to %s: %w", ResponseTopic, err)
	}
	c.client, c.responses = client, responses
	return client, nil
}

func (c *Connector) dropLocked() {
	if c.client != nil {
		_ = c.client.Disconnect(&paho.Disconnect{})
		c.client = nil
	}
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
