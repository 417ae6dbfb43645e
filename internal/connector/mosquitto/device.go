package mosquitto

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"

	"github.com/eclipse/paho.golang/paho/log"

	"github.com/eclipse/paho.golang/paho"
)

// Publish connects to the broker as a device with its certificate over
// mutual TLS and publishes payload to topic with QoS 1.
//
// It speaks MQTT 5 because Mosquitto answers a publish its ACLs refuse
// with a PUBACK carrying reason code 0x87 (not authorised) there; over
// MQTT 3.1.1 it acknowledges and silently drops it, so refusal could not
// be told from delivery. A refusal wraps ErrNotAuthorized.
func Publish(ctx context.Context, brokerURL string, cert tls.Certificate, roots *x509.CertPool, topic string, payload []byte) error {
	conn, err := dial(ctx, brokerURL, &tls.Config{
		RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
	})
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	defer conn.Close()
	client := paho.NewClient(paho.ClientConfig{Conn: conn, PingHandler: noPinger{}})
	ack, err := client.Connect(ctx, &paho.Connect{KeepAlive: 0, CleanStart: true, ClientID: "device-" + randomSuffix()})
	if err != nil {
		if ack != nil && ack.ReasonCode >= 0x80 {
			return fmt.Errorf("publish: connect: reason %#x: %w", ack.ReasonCode, ErrNotAuthorized)
		}
		return fmt.Errorf("publish: connect: %w", err)
	}
	defer func() { _ = client.Disconnect(&paho.Disconnect{}) }()
	ctx, cancel := untilClosed(ctx, client)
	defer cancel()
	resp, err := client.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload})
	if resp != nil && resp.ReasonCode >= 0x80 {
		return fmt.Errorf("publish to %q: reason %#x: %w", topic, resp.ReasonCode, ErrNotAuthorized)
	}
	if err != nil {
		return fmt.Errorf("publish to %q: %w", topic, err)
	}
	return nil
}

// untilClosed returns a context that also ends when the connection does:
// paho waits for an acknowledgement until its context ends, even after
// the broker has closed the connection.
func untilClosed(ctx context.Context, client *paho.Client) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-client.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// noPinger replaces paho's pinger, which writes PINGREQ to the connection
// from its own goroutine while a packet may be half written (paho writes
// a packet's header and body separately): Mosquitto then sees a PINGREQ
// inside a PUBLISH and drops the client for a malformed packet. Every
// write here comes from one goroutine at a time instead (the connector's
// mutex; responses are subscribed at QoS 0 so paho never acknowledges).
type noPinger struct{}

func (noPinger) Run(ctx context.Context, _ net.Conn, _ uint16) error { return nil }
func (noPinger) PacketSent()                                         {}
func (noPinger) PacketReceived()                                     {}
func (noPinger) PingResp()                                           {}
func (noPinger) SetDebug(log.Logger)                                 {}
