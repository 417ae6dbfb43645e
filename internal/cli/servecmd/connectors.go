package servecmd

import (
	"crypto/tls"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/hallmark-iot/hallmark/internal/app"
	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/connector/mosquitto"
	"github.com/hallmark-iot/hallmark/internal/connector/webhook"
	"github.com/hallmark-iot/hallmark/internal/monitoring/relay"
)

// connectorFlags configure the cloud connectors of `hallmark serve`.
type connectorFlags struct {
	mqttAdminURL, mqttAdminUser, mqttPasswordFile, mqttCAFile, mqttTopicPrefix string
	mqttMode                                                                   string
	mqttRekickAfter                                                            time.Duration
	webhookURL, webhookSecretFile                                              string
	eventsFrom                                                                 string
	workers                                                                    int
	lease, backoffMax                                                          time.Duration
}

func (c *connectorFlags) register(f *pflag.FlagSet) {
	f.StringVar(&c.mqttAdminURL, "mqtt-admin-url", "",
		"register devices with a Mosquitto broker's dynamic-security plugin, logging in at this mqtts:// `URL`")
	f.StringVar(&c.mqttAdminUser, "mqtt-admin-user", "hallmark-admin", "dynamic-security admin `USER`")
	f.StringVar(&c.mqttPasswordFile, "mqtt-admin-password-file", "",
		"`FILE` holding the admin password (or set HALLMARK_MQTT_ADMIN_PASSWORD)")
	f.StringVar(&c.mqttCAFile, "mqtt-ca-file", "", "PEM `FILE` of roots that verify the broker (default: the system's)")
	f.StringVar(&c.mqttTopicPrefix, "mqtt-topic-prefix", "devices/", "root of each device's topic tree: PREFIX<identity>/#")
	f.StringVar(&c.mqttMode, "mqtt-mode", string(mosquitto.ModeDynsec),
		"`MODE` of the Mosquitto connector: dynsec (a client and role per device) or pattern (no per-device broker state: "+
			"one pattern ACL and the CRL; --mqtt-admin-url, optional, only disconnects deregistered devices)")
	f.DurationVar(&c.mqttRekickAfter, "mqtt-rekick-after", time.Minute,
		"pattern mode: disconnect a deregistered device again this long after the first time, once the broker's CRL lists it "+
			"(above the crl-sync interval; 0: once)")
	f.StringVar(&c.webhookURL, "webhook-url", "", "POST signed device events to this `URL` (https, or http on loopback)")
	f.StringVar(&c.webhookSecretFile, "webhook-secret-file", "",
		"`FILE` holding the webhook signing secret, at least 16 bytes (or set HALLMARK_WEBHOOK_SECRET)")
	f.StringVar(&c.eventsFrom, "webhook-events-from", string(relay.StartEnd),
		"where the webhook's device events start the first time it is configured: end (what happens from then on) or beginning (the whole event log)")
	f.IntVar(&c.workers, "workers", 4, "connector job workers")
	f.DurationVar(&c.lease, "job-lease", time.Minute, "how long a worker holds a job: a killed replica's jobs run again after it")
	f.DurationVar(&c.backoffMax, "job-backoff-max", 5*time.Minute, "longest wait between a failing job's attempts (exponential backoff from 1s with full jitter)")
}

// worker is the job worker configuration the flags give.
func (c *connectorFlags) worker() (connector.WorkerConfig, error) {
	if c.lease < 2*time.Second || c.backoffMax < time.Second {
		return connector.WorkerConfig{}, cmdline.Usagef("--job-lease must be at least 2s and --job-backoff-max at least 1s")
	}
	return connector.WorkerConfig{Lease: c.lease, BackoffCap: c.backoffMax}, nil
}

// events is the event relay configuration the flags give.
func (c *connectorFlags) events() (app.EventsConfig, error) {
	start, err := relay.ParseStart(c.eventsFrom)
	if err != nil {
		return app.EventsConfig{}, cmdline.Usagef("--webhook-events-from %q: want end or beginning", c.eventsFrom)
	}
	return app.EventsConfig{Start: start}, nil
}

// build makes the configured connectors; none is configured by default.
func (c *connectorFlags) build(s *cmdline.Streams) ([]connector.Connector, error) {
	var out []connector.Connector
	mode := mosquitto.Mode(c.mqttMode)
	if mode != mosquitto.ModeDynsec && mode != mosquitto.ModePattern {
		return nil, cmdline.Usagef("--mqtt-mode %q: want dynsec or pattern", c.mqttMode)
	}
	if c.mqttAdminURL != "" || mode == mosquitto.ModePattern {
		var pass []byte
		var err error
		if c.mqttAdminURL != "" {
			if pass, err = c.password(s, c.mqttPasswordFile, "HALLMARK_MQTT_ADMIN_PASSWORD", "--mqtt-admin-password-file"); err != nil {
				return nil, err
			}
		}
		// The broker is not the platform: TLS 1.2 stays allowed, as
		// brokers that speak no 1.3 are common (so not
		// pki.ClientTLSConfig, which is the platform's 1.3-only one).
		tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.mqttCAFile != "" {
			if tlsCfg.RootCAs, err = s.ReadTrustBundle(c.mqttCAFile, "MQTT CA file"); err != nil {
				return nil, cmdline.Usage(err)
			}
		}
		m, err := mosquitto.New(mosquitto.Config{Mode: mode, BrokerURL: c.mqttAdminURL, TLS: tlsCfg, AdminUser: c.mqttAdminUser,
			AdminPassword: string(pass), TopicPrefix: c.mqttTopicPrefix, RekickAfter: c.mqttRekickAfter})
		if err != nil {
			return nil, cmdline.Usage(err)
		}
		out = append(out, m)
	}
	if c.webhookURL != "" {
		secret, err := c.password(s, c.webhookSecretFile, "HALLMARK_WEBHOOK_SECRET", "--webhook-secret-file")
		if err != nil {
			return nil, err
		}
		w, err := webhook.New(webhook.Config{URL: c.webhookURL, Secret: secret})
		if err != nil {
			return nil, cmdline.Usage(err)
		}
		out = append(out, w)
	}
	return out, nil
}

func (c *connectorFlags) password(s *cmdline.Streams, file, envName, flag string) ([]byte, error) {
	if file == "" && os.Getenv(envName) == "" {
		return nil, cmdline.Usagef("no secret: use %s FILE or set %s", flag, envName)
	}
	return s.Secret(file, envName)
}
