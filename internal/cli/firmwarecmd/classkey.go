package firmwarecmd

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/sealing"
)

func newFirmwareClassKeyCmd(s *cmdline.Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "class-key",
		Short: "Make and show device-class keys, the KEM keys images are encrypted to",
		Long: `A device-class key is a KEM key pair (HPKE, ` + strings.Join(sealing.Names(), ", ") + `).
Its private half goes into every device of the class; images are encrypted to
its public half. Keys are PEM "` + sealing.PEMPrivateKey + `" and
"` + sealing.PEMPublicKey + `".`,
	}
	cmd.AddCommand(newClassKeyGenerateCmd(s), newClassKeyPublicCmd(s), newClassKeyFingerprintCmd(s))
	return cmd
}
func newClassKeyGenerateCmd(s *cmdline.Streams) *cobra.Command {
	var kemName, out, pubOut string
	var force bool
	cmd := &cobra.Command{
		Use:   "generate [--kem KEM] -o FILE [--pub-out FILE]",
		Short: "Generate a device-class key pair",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			kem, err := sealing.Lookup(kemName)
			if err != nil {
				return cmdline.Usage(err)
			}
			if cmdline.IsStdio(out) && cmdline.IsStdio(pubOut) && pubOut != "" {
				return cmdline.Usagef("--out and --pub-out cannot both be standard output")
			}
			key, err := sealing.GenerateKey(kem)
			if err != nil {
				return err
			}
			privPEM, err := sealing.EncodePrivateKeyPEM(key)
			if err != nil {
				return err
			}
			outputs := []cmdline.FileOutput{{Path: out, Data: privPEM, Perm: 0o600}}
			if pubOut != "" {
				outputs = append(outputs, cmdline.FileOutput{Path: pubOut, Data: sealing.EncodePublicKeyPEM(key.Public()), Perm: 0o644})
			}
			return s.WriteOutputs(outputs, force)
		},
	}
	cmd.Flags().StringVar(&kemName, "kem", string(sealing.DefaultKEM), "KEM: "+strings.Join(sealing.Names(), ", "))
	cmd.Flags().StringVarP(&out, "out", "o", "-", "private key PEM `FILE` (written with mode 0600)")
	cmd.Flags().StringVar(&pubOut, "pub-out", "", "also write the public key PEM to `FILE`")
	cmd.Flags().BoolVar(&force, "force", false, "replace existing output files")
	return cmd
}
func newClassKeyPublicCmd(s *cmdline.Streams) *cobra.Command {
	var out string
	var force bool
	cmd := &cobra.Command{
		Use:   "public [KEY]",
		Short: "Print the public key PEM of a device-class key",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			pub, err := s.ReadClassPublicKey(cmdline.ArgOrStdin(args))
			if err != nil {
				return err
			}
			return s.WriteOutput(out, sealing.EncodePublicKeyPEM(pub), 0o644, force)
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "-", "public key PEM `FILE`")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing output file")
	return cmd
}
func newClassKeyFingerprintCmd(s *cmdline.Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "fingerprint [KEY]",
		Short: "Print the SHA-256 fingerprint that names a class key in image headers",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			pub, err := s.ReadClassPublicKey(cmdline.ArgOrStdin(args))
			if err != nil {
				return err
			}
			fp := pub.Fingerprint()
			_, err = fmt.Fprintf(s.Out, "%x  %s\n", fp, pub.KEM())
			return err
		},
	}
}
