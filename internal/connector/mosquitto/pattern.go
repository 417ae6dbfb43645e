package mosquitto

import (
	"context"
	"crypto/x509"
	"fmt"
	"sync"
	"time"

	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/identity"
)

// registerPattern checks what the pattern ACL relies on and tells the
// broker nothing: the device's certificate names its identity as common
// name, which use_identity_as_username makes the user name %u.
func (c *Connector) registerPattern(d connector.Device) error {
	cert, err := x509.ParseCertificate(d.Certificate)
	if err != nil {
		return fmt.Errorf("register %s: device certificate: %v: %w", d.Identity, err, connector.ErrPermanent)
	}
	if cert.Subject.CommonName != d.Identity.String() {
		return fmt.Errorf("register %s: the certificate's common name is not the identity, so the pattern ACL would not confine it: %w",
			d.Identity, connector.ErrPermanent)
	}
	return nil
}

// deregisterPattern disconnects the device, now and, with RekickAfter,
// once more later. Without an admin listener it does nothing: the CRL
// refuses the device's next handshake, and its open connection lasts
// until it ends.
func (c *Connector) deregisterPattern(ctx context.Context, id identity.ID) error {
	if c.cfg.BrokerURL == "" {
		return nil
	}
	if err := c.kick(ctx, id.String()); err != nil {
		return fmt.Errorf("deregister %s from mosquitto: %w", id, err)
	}
	if c.rekicks != nil {
		c.rekicks.add(id.String())
	}
	return nil
}

// kick disconnects every connection of user name id. Mosquitto 2.0 has no
// kick command; deleting a dynamic-security client kicks its user name's
// connections, so the batch creates a client without password or role
// and deletes it at once: the plugin holds no device afterwards. A client
// that exists already (a device registered in dynsec mode) is left
// alone: createClient's "already exists" stops nothing, but the delete
// that follows would remove it, so kick is only for ModePattern, whose
// broker holds no device clients.
func (c *Connector) kick(ctx context.Context, id string) error {
	cmds := []command{
		{"command": "createClient", "username": id},
		{"command": "deleteClient", "username": id},
	}
	if _, err := c.run(ctx, cmds, "already"); err != nil {
		return fmt.Errorf("kick: %w", err)
	}
	return nil
}

// rekickQueue makes the second kicks, in order, from one goroutine: a
// mass revocation queues one entry per device, not one timer each.
type rekickQueue struct {
	delay time.Duration
	kick  func(context.Context, string) error

	mu      sync.Mutex
	queue   []rekick
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	started bool
	stopped bool
}

type rekick struct {
	id  string
	due time.Time
}

func newRekickQueue(delay time.Duration, kick func(context.Context, string) error) *rekickQueue {
	return &rekickQueue{delay: delay, kick: kick, wake: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
}

func (q *rekickQueue) add(id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return
	}
	q.queue = append(q.queue, rekick{id: id, due: time.Now().Add(q.delay)})
	if !q.started {
		q.started = true
		go q.run()
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run kicks each entry when it is due; a failed second kick is dropped
// (the first one succeeded, and the CRL refuses the next handshake).
func (q *rekickQueue) run() {
	defer close(q.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-q.stop
		cancel()
	}()
	for {
		q.mu.Lock()
		var next *rekick
		if len(q.queue) > 0 {
			first := q.queue[0]
			next = &first
		}
		q.mu.Unlock()
		var timer *time.Timer
		var due <-chan time.Time
		if next != nil {
			timer = time.NewTimer(time.Until(next.due))
			due = timer.C
		}
		select {
		case <-q.stop:
			return
		case <-q.wake:
			if timer != nil {
				timer.Stop()
			}
			continue
		case <-due:
		}
		q.mu.Lock()
		item := q.queue[0]
		q.queue = q.queue[1:]
		q.mu.Unlock()
		kickCtx, kickDone := context.WithTimeout(ctx, 10*time.Second)
		_ = q.kick(kickCtx, item.id)
		kickDone()
	}
}

func (q *rekickQueue) close() {
	q.mu.Lock()
	started := q.started
	if !q.stopped {
		q.stopped = true
		close(q.stop)
	}
	q.mu.Unlock()
	if started {
		<-q.done
	}
}
