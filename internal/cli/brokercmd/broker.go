// Package brokercmd owns "hallmark broker": what runs beside a customer's
// MQTT broker. Today that is crl-sync, which keeps the broker's CRL file
// current from the platform's revocation URL (package crlsync), so that
// the broker refuses suspended, revoked and decommissioned devices at the
// TLS handshake.
package brokercmd

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/connector/mosquitto/crlsync"
)

// maxCAFile bounds the CA bundle read: a handful of certificates.
const maxCAFile = 1 << 20

// New returns the broker command group.
func New(s *cmdline.Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Keep an MQTT broker's view of the device lifecycle current",
	}
	cmd.AddCommand(newCRLSyncCmd(s))
	return cmd
}

type crlSyncFlags struct {
	url, caFile, crlFile, pidFile string
	interval                      time.Duration
	once                          bool
}

func newCRLSyncCmd(s *cmdline.Streams) *cobra.Command {
	var f crlSyncFlags
	cmd := &cobra.Command{
		Use:   "crl-sync --crl-url URL --ca-file FILE --crl-file FILE [--pid-file FILE]",
		Short: "Keep the broker's CRL file current from the platform's CRL URL",
		Long: `Fetch the platform's CRL from --crl-url (the CRL Distribution Point in device
certificates: <revocation base URL>/crl/<name>.crl) every --interval, with a
conditional request on its ETag. A new CRL is verified against the CA
certificates in --ca-file (the broker's cafile), refused if it is older than
the one in --crl-file or not current, written there atomically as PEM, and
the broker is told to read it again: SIGHUP to the process in --pid-file
(Mosquitto's pid_file). Mosquitto then refuses listed certificates at the
TLS handshake; its open connections stay (the connector disconnects them).

A revoked device is refused at most --interval after the platform publishes
its revocation, which it does at once. Failures are logged and retried at
the next interval; --once syncs once and exits 1 on failure.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			syncer, err := f.syncer(s)
			if err != nil {
				return err
			}
			if !f.once {
				ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				return ignoreCancel(syncer.Run(ctx))
			}
			res, err := syncer.Sync(cmd.Context())
			if err != nil {
				return err
			}
			state := "unchanged"
			if res.Changed {
				state = "installed"
			}
			_, err = fmt.Fprintf(s.Out, "CRL %s: number %s, %d entries, next update %s\n", state, res.Number, res.Entries,
				res.NextUpdate.UTC().Format(time.RFC3339))
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.url, "crl-url", "", "the platform's CRL `URL` (http://HOST:PORT/crl/NAME.crl)")
	fl.StringVar(&f.caFile, "ca-file", "", "PEM `FILE` of the CA certificates the broker trusts for devices; the CRL must be signed by one")
	fl.StringVar(&f.crlFile, "crl-file", "", "the broker's CRL `FILE` (Mosquitto's crlfile)")
	fl.StringVar(&f.pidFile, "pid-file", "", "`FILE` holding the broker's process ID, signalled (SIGHUP) after a new CRL")
	fl.DurationVar(&f.interval, "interval", crlsync.DefaultInterval, "how often to fetch the CRL")
	fl.BoolVar(&f.once, "once", false, "sync once and exit")
	cmdline.BindEnv(fl, cmdline.EnvPrefix+"BROKER_", "crl-url", "ca-file", "crl-file", "pid-file", "interval")
	return cmd
}

func (f *crlSyncFlags) syncer(s *cmdline.Streams) (*crlsync.Syncer, error) {
	if f.url == "" || f.caFile == "" || f.crlFile == "" {
		return nil, cmdline.Usagef("crl-sync needs --crl-url, --ca-file and --crl-file")
	}
	if f.interval < time.Second {
		return nil, cmdline.Usagef("--interval %s: at least 1s", f.interval)
	}
	data, err := s.ReadInput(f.caFile, maxCAFile, "CA file")
	if err != nil {
		return nil, cmdline.Usage(err)
	}
	issuers, err := parseCertificates(data)
	if err != nil {
		return nil, cmdline.Usage(fmt.Errorf("--ca-file %s: %w", f.caFile, err))
	}
	cfg := crlsync.Config{URL: f.url, Issuers: issuers, File: f.crlFile, Interval: f.interval,
		Log: slog.New(slog.NewTextHandler(s.Err, nil))}
	if f.pidFile != "" {
		cfg.Reloader = crlsync.PIDFile(f.pidFile)
	}
	syncer, err := crlsync.New(cfg)
	if err != nil {
		return nil, cmdline.Usage(err)
	}
	return syncer, nil
}

// parseCertificates reads every CERTIFICATE block of a PEM bundle.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return out, nil
}

// ignoreCancel makes the end of a run by signal (its context cancelled) a
// clean exit.
func ignoreCancel(err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
