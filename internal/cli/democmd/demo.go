// Package democmd owns "hallmark demo": the whole path on embedded
// defaults, from the PUF root of trust (demo.go) through a provisioning
// station (factory.go) and the platform in-process (platform.go) to a
// Mosquitto cloud when one is installed (cloud.go).
package democmd

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/puf"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// demoChallengeContext domain-separates the demo's proof of possession from
// every other signature a device key makes.
const demoChallengeContext = "hallmark demo proof-of-possession v1\x00"

// New returns the demo command.
func New(s *cmdline.Streams) *cobra.Command {
	var ber float64
	var hsm, keep bool
	cmd := &cobra.Command{
		Use:   "demo [--hsm] [--keep-running]",
		Short: "Show the device root of trust end to end, on embedded defaults",
		Long: `For every signature suite, simulate a PUF chip, enrol it (helper data out,
nothing secret stored), then power it up again: reconstruct the seed from a
fresh noisy reading, derive the enrolment key pair, compute the identity and
prove possession by signing a fresh challenge, which is verified. The table
shows that two independent noisy power-ups give the same identity.

Then run a provisioning station in a temporary directory: enrol one device
of every class (puf, keygen, inject over an encrypted channel, inject in
the clear) and every suite, and verify the signed batch manifest.

Last, start the platform in-process (HTTPS on a free local port, a new CA,
embedded SQLite), register the station and a product, import the manifest,
and onboard every device over TLS: each proves its identity to a fresh
challenge and receives a certificate chain, which is verified.

When Mosquitto is installed, a broker trusting the platform's CA is started
on a free port first; the platform registers every device with it in the
background, and each device publishes to its own topic with its new
certificate and is refused another device's topic. Then one device is
suspended, resumed and revoked through the admin API: the broker drops its
open connection and refuses its next TLS handshake (its CRL file, kept
current from the platform's revocation listener), lets it in again once
resumed, and the platform's CRL and OCSP responder say why.

It ends over the air, with no factory involved: the vendor's ECDSA P-256
and ML-DSA-65 roots become the product's firmware policy; a migration
campaign rolls out an image signed by both that retires the classical root
slot, and the ECDSA P-256 device of each class that can take a key over the
air (puf, keygen, inject with its encrypted channel) boots it, proves to a
fresh challenge that its old and new keys are one device, and takes
credentials for its ML-DSA-65 identity, each through its own update agent
over mutual TLS. The operator then retires the slot in the policy: an image
signed only under the classical root is refused by the repository and by
the ROM.

With --hsm the platform's keys are in hardware: the demo makes a SoftHSM2
token of its own (in its temporary directory, with a random PIN kept in a
0600 file) and the platform creates its CA and TLS keys inside it, as
non-extractable token objects; and the demo starts its own swtpm TPM 2.0
simulator, in which one more device of the fleet, a tpm-class gateway,
creates its enrolment and operational keys. The gateway goes the same way
as the others: station enrolment, manifest, import, onboarding, and mutual
TLS with the broker, each signature made by the TPM. Both are removed at the
end. --hsm needs the Debian packages softhsm2 and swtpm (docs/keystore.md,
docs/tpm.md).

The platform serves its web console at https://localhost:PORT/console/
(docs/console.md); sign in with the bootstrap admin token, the file
DATA/admin.token the demo prints. With --keep-running the platform (and the
broker) stay up after the last step, with the demo's devices in the
registry, until interrupted (Ctrl+C or SIGTERM); then the demo stops them
and removes its temporary directory.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// An interrupt cancels the steps, so that the deferred
			// clean-ups below run (the temporary directory, the broker,
			// the token, the simulator); with --keep-running it is the
			// normal end. A second interrupt ends the process at once.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			go func() { <-ctx.Done(); stop() }()
			var module string
			if hsm {
				var err error
				if module, err = hsmPreflight(); err != nil {
					return err
				}
			}
			if err := runDemo(s, ber); err != nil {
				return err
			}
			dir, err := os.MkdirTemp("", "hallmark-demo-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			var hw *demoHardware
			if hsm {
				if hw, err = startDemoHardware(ctx, dir, module); err != nil {
					return fmt.Errorf("demo --hsm: %w", err)
				}
				defer hw.close()
			}
			batch, err := demoFactory(ctx, s, dir, hw.tpmAddress())
			if err == nil {
				err = demoPlatform(ctx, s, dir, batch, hw, keep)
			}
			if err != nil && ctx.Err() != nil {
				return errors.New("demo interrupted; its temporary files are removed")
			}
			return err
		},
	}
	cmd.Flags().Float64Var(&ber, "ber", puf.DefaultBitErrorRate, "PUF bit error rate of each read")
	cmd.Flags().BoolVar(&keep, "keep-running", false, "after the last step, keep the platform and its web console running until interrupted (Ctrl+C), to look around")
	cmd.Flags().BoolVar(&hsm, "hsm", false, "keep the platform's CA and TLS keys in a SoftHSM2 token, and add a TPM 2.0 gateway (swtpm) to the fleet; needs the Debian packages softhsm2 and swtpm")
	return cmd
}

type demoRow struct {
	suite              sigalg.ID
	id                 identity.ID
	pubBytes, sigBytes int
	elapsed            time.Duration
}

func runDemo(s *cmdline.Streams, ber float64) error {
	cfg := puf.DefaultConfig()
	cfg.BitErrorRate = ber
	if _, err := puf.NewChip([32]byte{}, cfg); err != nil {
		return cmdline.Usage(err)
	}
	fmt.Fprintf(s.Out, "Simulated SRAM PUF: %.0f%% bit error rate per read, %d PUF bits, %d-byte helper data.\n\n",
		100*ber, puf.PUFBits, puf.HelperSize)
	tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SUITE\tIDENTITY\tPUBLIC KEY\tSIGNATURE\tPOWER-UPS AGREE\tPROOF\tTIME")
	for _, suite := range sigalg.All() {
		row, err := demoDevice(suite, cfg)
		if err != nil {
			return fmt.Errorf("demo %s: %w", suite.ID(), err)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d B\t%d B\tyes\tverified\t%s\n", row.suite, row.id,
			row.pubBytes, row.sigBytes, row.elapsed.Round(time.Microsecond))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(s.Out, "\nEach identity is SHA-256 of the device's DER SubjectPublicKeyInfo; the private key was never stored.")
	return nil
}

// demoDevice plays one PUF device's life: enrolment in the factory, then two
// power-ups in the field, each reconstructing the key from a noisy reading.
func demoDevice(suite sigalg.Suite, cfg puf.Config) (demoRow, error) {
	start := time.Now()
	var chipSeed [32]byte
	if _, err := rand.Read(chipSeed[:]); err != nil {
		return demoRow{}, err
	}
	chip, err := puf.NewChip(chipSeed, cfg)
	if err != nil {
		return demoRow{}, err
	}
	_, helper, err := puf.EnrolChip(chip, puf.DefaultEnrolReads)
	if err != nil {
		return demoRow{}, err
	}
	var ids [2]identity.ID
	var row demoRow
	for i := range ids {
		seed, err := puf.Reconstruct(chip.Read(), helper)
		if err != nil {
			return demoRow{}, fmt.Errorf("power-up %d: %w", i+1, err)
		}
		key, err := suite.DeriveKey(seed[:])
		if err != nil {
			return demoRow{}, err
		}
		if ids[i], err = identity.FromPublicKey(key.Public()); err != nil {
			return demoRow{}, err
		}
		challenge := make([]byte, 32)
		rand.Read(challenge)
		msg := append([]byte(demoChallengeContext), challenge...)
		msg = append(msg, ids[i][:]...)
		sig, err := suite.Sign(key, msg)
		if err != nil {
			return demoRow{}, err
		}
		if err := suite.Verify(key.Public(), msg, sig); err != nil {
			return demoRow{}, fmt.Errorf("proof of possession: %w", err)
		}
		spki, err := sigalg.MarshalPublicKey(key.Public())
		if err != nil {
			return demoRow{}, err
		}
		row.pubBytes, row.sigBytes = len(spki), len(sig)
	}
	if ids[0] != ids[1] {
		return demoRow{}, fmt.Errorf("two power-ups gave two identities")
	}
	row.suite, row.id, row.elapsed = suite.ID(), ids[0], time.Since(start)
	return row, nil
}
