// Package mosquitto owns Hallmark's connector for a Mosquitto broker, in
// one of two modes, and the device side's connection with its certificate
// over mutual TLS.
//
// In dynamic-security mode (ModeDynsec) it registers each device with the
// broker's dynamic-security plugin by sending commands to
// $CONTROL/dynamic-security/v1 over MQTT 5: per device a role
// hallmark-device-<identity> whose ACLs allow only devices/<identity>/#
// (TopicPrefix) and a client whose user name is the identity, because
// the broker's device listener takes the client certificate's common name
// — the identity hex — as the user name.
//
// In pattern mode (ModePattern) the broker holds no per-device state: one
// pattern ACL confines every device to devices/%u/#, the broker's CRL
// file refuses revoked devices (package crlsync keeps it current), and
// deregistering only disconnects the device.
package mosquitto

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// ControlTopic and ResponseTopic are the dynamic-security plugin's API.
const (
	ControlTopic  = "$CONTROL/dynamic-security/v1"
	ResponseTopic = ControlTopic + "/response"
	// RolePrefix names the role of each device.
	RolePrefix = "hallmark-device-"
)

var (
	// ErrNotAuthorized is the broker refusing a publish or a connection.
	ErrNotAuthorized = errors.New("not authorised by the broker")
	// ErrCertificateRefused is the broker refusing the device's
	// certificate at the TLS handshake: listed on its CRL (the device is
	// suspended, revoked or decommissioned), or not from a CA it trusts.
	ErrCertificateRefused = errors.New("the broker refused the device's certificate")
)

// dial opens a TLS connection to an mqtts://host:port URL.
func dial(ctx context.Context, brokerURL string, cfg *tls.Config) (net.Conn, error) {
	u, err := url.Parse(brokerURL)
	if err != nil || u.Scheme != "mqtts" || u.Host == "" {
		return nil, fmt.Errorf("broker URL %q: want mqtts://host:port", brokerURL)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "8883")
	}
	cfg = cfg.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = u.Hostname()
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	d := tls.Dialer{Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", host, err)
	}
	return conn, nil
}

func validURL(brokerURL string) error {
	u, err := url.Parse(brokerURL)
	if err != nil || u.Scheme != "mqtts" || u.Host == "" {
		return fmt.Errorf("broker URL %q: want mqtts://host:port", brokerURL)
	}
	return nil
}

// deviceTopic is the topic tree a device may use.
func deviceTopic(prefix, id string) string {
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return prefix + id + "/#"
}
