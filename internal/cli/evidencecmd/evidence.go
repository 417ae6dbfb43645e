// Package evidencecmd owns `hallmark evidence`: an auditor's offline check
// of an evidence pack (verify) with nothing but the pack, the platform's
// published audit key and, optionally, its trust bundle and the original
// station-signed manifests. docs/evidence.md, "Evidence packs".
package evidencecmd

import (
	"crypto"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/evidence"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Input limits: a key, a trust bundle, one manifest held in memory.
const (
	maxKeyFile      = 64 << 10
	maxTrustFile    = 1 << 20
	maxManifestFile = 256 << 20
)

// New returns the evidence command group.
func New(s *cmdline.Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "evidence",
		Short: "Verify compliance evidence packs offline",
		Long: `An evidence pack (hallmark admin evidence export) is a tar archive signed by the
platform's audit key. verify checks it with no database and no server.`,
	}
	cmd.AddCommand(newVerifyCmd(s))
	return cmd
}

func newVerifyCmd(s *cmdline.Streams) *cobra.Command {
	var keyFile, trustFile string
	var manifests []string
	cmd := &cobra.Command{
		Use:   "verify PACK --key AUDIT-PUB.pem [--trust BUNDLE.pem] [--manifest BATCH=FILE]...",
		Short: "Check an evidence pack's signature, members and evidence",
		Long: `Check, in order: the audit key's signature over MANIFEST.json; every member's
SHA-256 against it, with no member missing, extra or out of order; then each
member: device and station identities against their keys, each certificate's
chain to the CA certificates in the pack (and, with --trust, that each CA root
is in the platform's published trust bundle), each firmware image's signatures
against its product's root-key hashes, and each audit entry's chain proof to a
checkpoint the audit key signed. With --manifest BATCH=FILE (repeatable), the
original station-signed manifest of a batch is verified with the station key in
the pack, its digest compared with the one the platform imported, and each
device of the batch found in it. Exit 0 with a summary, or 1 with one line
naming the first member that failed and what failed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, pub, err := readInputs(s, keyFile, trustFile, manifests)
			if err != nil {
				return err
			}
			f, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("open pack: %w", cmdline.PathError(err))
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				return fmt.Errorf("open pack: %w", err)
			}
			rep, err := evidence.Verify(cmd.Context(), f, fi.Size(), pub, opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "evidence pack verified: %s %s, %d members, %d devices, %d certificates, %d firmware images, %d audit entries with proofs, %d manifests\n",
				rep.Pack.Scope, cmdline.Safe(rep.Pack.Subject), rep.Members, rep.Devices, rep.Certificates, rep.Firmware, rep.AuditEntries, rep.Manifests)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&keyFile, "key", "", "the platform's audit public key `FILE` (PEM; GET /v1/audit/key)")
	fl.StringVar(&trustFile, "trust", "", "the platform's published CA trust bundle `FILE` (PEM)")
	fl.StringArrayVar(&manifests, "manifest", nil, "an original station-signed manifest, `BATCH=FILE`")
	return cmd
}

func readInputs(s *cmdline.Streams, keyFile, trustFile string, manifests []string) (evidence.Options, crypto.PublicKey, error) {
	var opts evidence.Options
	if keyFile == "" {
		return opts, nil, cmdline.Usagef("--key FILE is required: the audit public key (hallmark audit key)")
	}
	data, err := s.ReadInput(keyFile, maxKeyFile, "audit key")
	if err != nil {
		return opts, nil, err
	}
	pub, err := sigalg.ParsePublicKeyPEM(data)
	if err != nil {
		return opts, nil, fmt.Errorf("audit key %s: %w", cmdline.DisplayPath(keyFile), err)
	}
	if trustFile != "" {
		if opts.Trust, err = s.ReadInput(trustFile, maxTrustFile, "trust bundle"); err != nil {
			return opts, nil, err
		}
	}
	for _, m := range manifests {
		batch, file, ok := strings.Cut(m, "=")
		if !ok || !audit.BatchPattern.MatchString(batch) || file == "" {
			return opts, nil, cmdline.Usagef("--manifest %q: want BATCH=FILE", m)
		}
		if opts.Manifests == nil {
			opts.Manifests = map[string][]byte{}
		}
		if opts.Manifests[batch], err = s.ReadInput(file, maxManifestFile, "manifest"); err != nil {
			return opts, nil, err
		}
	}
	return opts, pub, nil
}
