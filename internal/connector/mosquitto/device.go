package mosquitto

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"

	"github.com/eclipse/paho.golang/paho/log"

	"github.com/eclipse/paho.golang/paho"
)

// Session is a device's open MQTT 5 connection to the broker, over mutual
// TLS with its certificate. It is not safe for concurrent use.
type Session struct {
	conn   net.Conn
	client *paho.Client
}

// Connect connects to the broker as a device with its certificate over
// mutual TLS and MQTT 5. A broker that refuses the certificate (revoked
// on its CRL, or from an unknown CA) gives an error wrapping
// ErrCertificateRefused; one refusing the MQTT connection, one wrapping
// ErrNotAuthorized.
//
// With TLS 1.3 the client's side of the handshake ends before the broker
// has checked the client certificate, so the broker's refusal (a TLS
// alert) arrives when the CONNECT is answered: Connect waits for that
// answer, and so sees it.
func Connect(ctx context.Context, brokerURL string, cert tls.Certificate, roots *x509.CertPool) (*Session, error) {
	conn, err := dial(ctx, brokerURL, &tls.Config{
		RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
	})
	if err != nil {
		return nil, certificateRefused(err)
	}
	client := paho.NewClient(paho.ClientConfig{Conn: conn, PingHandler: noPinger{}})
	ack, err := client.Connect(ctx, &paho.Connect{KeepAlive: 0, CleanStart: true, ClientID: "device-" + randomSuffix()})
	if err != nil {
		conn.Close()
		if ack != nil && ack.ReasonCode >= 0x80 {
			return nil, fmt.Errorf("connect: reason %#x: %w", ack.ReasonCode, ErrNotAuthorized)
		}
		return nil, fmt.Errorf("connect: %w", certificateRefused(err))
	}
	return &Session{conn: conn, client: client}, nil
}

// certificateRefused marks a TLS alert from the broker as
// ErrCertificateRefused: the only alerts a broker sends a client whose
// handshake it has not finished are about the client's certificate.
func certificateRefused(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return fmt.Errorf("%w (%v)", ErrCertificateRefused, err)
	}
	return err
}

// Done is closed when the connection ends, for instance when the broker
// drops it.
func (s *Session) Done() <-chan struct{} { return s.client.Done() }

// Publish publishes payload to topic with QoS 1.
//
// It speaks MQTT 5 because Mosquitto answers a publish its ACLs refuse
// with a PUBACK carrying reason code 0x87 (not authorised) there; over
// MQTT 3.1.1 it acknowledges and silently drops it, so refusal could not
// be told from delivery. A refusal wraps ErrNotAuthorized.
func (s *Session) Publish(ctx context.Context, topic string, payload []byte) error {
	ctx, cancel := untilClosed(ctx, s.client)
	defer cancel()
	resp, err := s.client.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload})
	if resp != nil && resp.ReasonCode >= 0x80 {
		return fmt.Errorf("publish to %q: reason %#x: %w", topic, resp.ReasonCode, ErrNotAuthorized)
	}
	if err != nil {
		return fmt.Errorf("publish to %q: %w", topic, err)
	}
	return nil
}

// Close disconnects.
func (s *Session) Close() error {
	err := s.client.Disconnect(&paho.Disconnect{})
	s.conn.Close()
	return err
}

// Publish connects (Connect), publishes payload to topic with QoS 1
// (Session.Publish) and disconnects.
func Publish(ctx context.Context, brokerURL string, cert tls.Certificate, roots *x509.CertPool, topic string, payload []byte) error {
	s, err := Connect(ctx, brokerURL, cert, roots)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	defer s.Close()
	return s.Publish(ctx, topic, payload)
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
