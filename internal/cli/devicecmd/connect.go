package devicecmd

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/connector/mosquitto"
	"github.com/hallmark-iot/hallmark/internal/pki"
)

// maxPublish bounds a published message: telemetry, not file transfer.
const maxPublish = 64 << 10

func newDeviceConnectCmd(s *cmdline.Streams) *cobra.Command {
	var statePath, endpoint, topic, message, brokerCA, topicPrefix string
	cmd := &cobra.Command{
		Use:   "connect --state STATE [--topic TOPIC] [--message TEXT]",
		Short: "Connect to the cloud broker with the device certificate and publish a message",
		Long: `Boot the device, connect to the MQTT broker named by its credentials'
cloud endpoint (or --endpoint) over mutual TLS with the certificate the
platform issued, and publish one message with QoS 1 to the device's own
topic (PREFIX<identity>/status by default) over MQTT 5. A broker refusing
the publish (another device's topic, a device not registered yet) makes the
command fail with "not authorised by the broker"; a broker refusing the
certificate at the TLS handshake (its CRL lists a suspended, revoked or
decommissioned device) with "the broker refused the device's certificate".

The broker is verified against the trust bundle the platform gave the
device, or --broker-ca-file when the broker has a certificate of its own.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(message) > maxPublish {
				return cmdline.Usagef("--message has %d bytes, at most %d", len(message), maxPublish)
			}
			_, held, cert, err := onboardedDevice(statePath, "connect")
			if err != nil {
				return err
			}
			fromCredentials := endpoint == ""
			if fromCredentials {
				endpoint = held.CloudEndpoint
			}
			if endpoint == "" {
				return errors.New("connect: the device's credentials name no cloud endpoint (the product has none): use --endpoint mqtts://HOST:PORT")
			}
			roots, err := brokerRoots(s, held.TrustBundle, brokerCA)
			if err != nil {
				return err
			}
			id := cert.Leaf.Subject.CommonName
			if topic == "" {
				topic = topicPrefix + id + "/status"
			}
			if strings.ContainsAny(topic, "#+") {
				return cmdline.Usagef("--topic %q: a publish names one topic, without wildcards", topic)
			}
			if message == "" {
				message = fmt.Sprintf(`{"identity":%q,"status":"online"}`, id)
			}
			if err := mosquitto.Publish(cmd.Context(), endpoint, *cert, roots, topic, []byte(message)); err != nil {
				return publishError(err, endpoint, fromCredentials)
			}
			// The endpoint and the certificate's name came from the platform.
			_, err = fmt.Fprintf(s.Out, "published %d bytes to %s at %s as %s\n", len(message), cmdline.Safe(topic), cmdline.Safe(endpoint), cmdline.Safe(id))
			return err
		},
	}
	bindState(cmd, &statePath)
	f := cmd.Flags()
	f.StringVar(&endpoint, "endpoint", "", "broker `URL` (default: the credentials' cloud endpoint)")
	f.StringVar(&topic, "topic", "", "`TOPIC` to publish to (default PREFIX<identity>/status)")
	f.StringVar(&topicPrefix, "topic-prefix", "devices/", "root of the device's topic tree")
	f.StringVar(&message, "message", "", "message to publish (default a JSON status)")
	f.StringVar(&brokerCA, "broker-ca-file", "", "PEM `FILE` of roots that verify the broker (default: the device's trust bundle)")
	return cmd
}

// brokerRoots are the roots that verify the broker: --broker-ca-file when
// given, else the trust bundle the platform gave the device.
func brokerRoots(s *cmdline.Streams, trustBundle, brokerCA string) (*x509.CertPool, error) {
	if brokerCA != "" {
		return s.ReadTrustBundle(brokerCA, "broker CA")
	}
	roots, err := pki.ParseTrustBundle([]byte(trustBundle))
	if err != nil {
		return nil, fmt.Errorf("connect: the device's trust bundle: %w", err)
	}
	return roots, nil
}

// publishError explains a broker that cannot be reached: the endpoint in
// the credentials is the product's --cloud-endpoint as an administrator
// typed it, often a placeholder, and a bare DNS or dial error does not say
// where it came from or how to fix it.
func publishError(err error, endpoint string, fromCredentials bool) error {
	if errors.Is(err, mosquitto.ErrCertificateRefused) {
		return fmt.Errorf("connect: %w: the broker's CRL lists it if the device is suspended, revoked or decommissioned "+
			"(hallmark admin device get shows its state)", err)
	}
	var dialErr *net.OpError
	if !errors.As(err, &dialErr) || dialErr.Op != "dial" {
		return fmt.Errorf("connect: %w", err)
	}
	if !fromCredentials {
		return fmt.Errorf("connect: %w (--endpoint %s must name a reachable MQTT broker)", err, cmdline.Safe(endpoint))
	}
	return fmt.Errorf("connect: %w (the endpoint %s comes from the product's --cloud-endpoint, set with "+
		"hallmark admin product add, and must name a reachable MQTT broker; --endpoint overrides it)", err, cmdline.Safe(endpoint))
}
