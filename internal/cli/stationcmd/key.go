package stationcmd

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	_ "github.com/hallmark-iot/hallmark/internal/keys/softkms" // the soft: key store
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

func newStationKeyCmd(s *cmdline.Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Create and show the station's signing key in its key store",
		Long: `The station key signs batch manifests. It lives in a key store: a directory
whose keys are encrypted at rest under a passphrase (AES-256-GCM, PBKDF2-HMAC-SHA256
with 600,000 iterations; see docs/keystore.md). The passphrase is read from
--passphrase-file or $HALLMARK_KEYSTORE_PASSPHRASE, never from the command line.`,
	}
	cmd.AddCommand(newStationKeyCreateCmd(s), newStationKeyPublicCmd(s))
	return cmd
}

func newStationKeyCreateCmd(s *cmdline.Streams) *cobra.Command {
	var f cmdline.KeyStoreFlags
	var alg, pubOut string
	var force bool
	cmd := &cobra.Command{
		Use:   "create --keystore DIR [--name station] [--alg ml-dsa-65] [--pub-out FILE]",
		Short: "Create a station key (and the key store, if DIR holds none)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			suite, err := sigalg.Lookup(alg)
			if err != nil {
				return cmdline.Usage(err)
			}
			pub, err := f.CreateKey(cmd.Context(), s, suite.ID())
			if err != nil {
				return err
			}
			return s.ReportCreatedKey(pub, suite.ID(), f.Name, "station", pubOut, force)
		},
	}
	f.Bind(cmd)
	cmd.Flags().StringVarP(&alg, "alg", "a", string(sigalg.MLDSA65), "signature suite: "+strings.Join(sigalg.Names(), ", "))
	cmd.Flags().StringVar(&pubOut, "pub-out", "", "also write the public key PEM to `FILE` (- for standard output)")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing --pub-out file")
	return cmd
}

func newStationKeyPublicCmd(s *cmdline.Streams) *cobra.Command {
	var f cmdline.KeyStoreFlags
	var out string
	var force bool
	cmd := &cobra.Command{
		Use:   "public --keystore DIR [--name station] [--out FILE]",
		Short: "Print the station public key PEM, which verifiers of its manifests need",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pem, err := f.PublicKeyPEM(cmd.Context(), s)
			if err != nil {
				return err
			}
			return s.WriteOutput(out, pem, 0o644, force)
		},
	}
	f.Bind(cmd)
	cmd.Flags().StringVarP(&out, "out", "o", "-", "public key PEM `FILE`")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing output file")
	return cmd
}
