package firmwarecmd

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Firmware signing roots kept in a key store rather than in PEM files:
// created there, used by "firmware sign --keystore … --key-name …", and
// known to devices and products only by their public key, which root-key
// public exports.

func newFirmwareRootKeyCmd(s *cmdline.Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "root-key",
		Short: "Create and export firmware signing roots held in a key store or HSM",
		Long: `A firmware signing root may live in a key store instead of a PEM file: the
software store (a directory, or soft:DIR) or a PKCS #11 token
(pkcs11:token=LABEL?module-path=/path/module.so&pin-source=file:/path/pin), where
it is made as a non-extractable key. create makes it; public prints the public
key PEM that devices' --root and a product's firmware policy need; "firmware
sign --keystore URI --key-name NAME" signs with it. The passphrase or PIN is
read from --passphrase-file or $` + cmdline.KeyStorePassphraseEnv + ` (a token also takes its URI's
pin-source, or $HALLMARK_PKCS11_PIN), never from the command line.`,
	}
	cmd.AddCommand(newRootKeyCreateCmd(s), newRootKeyPublicCmd(s))
	return cmd
}

func newRootKeyCreateCmd(s *cmdline.Streams) *cobra.Command {
	var f cmdline.KeyStoreFlags
	var alg, pubOut string
	var force bool
	cmd := &cobra.Command{
		Use:   "create --keystore URI --name NAME [--alg ecdsa-p256] [--pub-out FILE]",
		Short: "Create a firmware signing root in a key store (and a software store, if DIR holds none)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.Name == "" {
				return cmdline.Usagef("--name NAME is required")
			}
			suite, err := sigalg.Lookup(alg)
			if err != nil {
				return cmdline.Usage(err)
			}
			pub, err := f.CreateKey(cmd.Context(), s, suite.ID())
			if err != nil {
				return err
			}
			return s.ReportCreatedKey(pub, suite.ID(), f.Name, "root", pubOut, force)
		},
	}
	f.BindStore(cmd)
	cmd.Flags().StringVar(&f.Name, "name", "", "key `NAME` in the store (required)")
	cmd.Flags().StringVarP(&alg, "alg", "a", string(sigalg.ECDSAP256), "signature suite: "+strings.Join(sigalg.Names(), ", "))
	cmd.Flags().StringVar(&pubOut, "pub-out", "", "also write the public key PEM to `FILE` (- for standard output)")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing --pub-out file")
	return cmd
}

func newRootKeyPublicCmd(s *cmdline.Streams) *cobra.Command {
	var f cmdline.KeyStoreFlags
	var out string
	var force bool
	cmd := &cobra.Command{
		Use:   "public --keystore URI --name NAME [--out FILE]",
		Short: "Print a firmware signing root's public key PEM, for devices and the product's firmware policy",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.Name == "" {
				return cmdline.Usagef("--name NAME is required")
			}
			pem, err := f.PublicKeyPEM(cmd.Context(), s)
			if err != nil {
				return err
			}
			return s.WriteOutput(out, pem, 0o644, force)
		},
	}
	f.BindStore(cmd)
	cmd.Flags().StringVar(&f.Name, "name", "", "key `NAME` in the store (required)")
	cmd.Flags().StringVarP(&out, "out", "o", "-", "public key PEM `FILE`")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing output file")
	return cmd
}
