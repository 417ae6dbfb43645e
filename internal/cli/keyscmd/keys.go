// Package keyscmd owns "hallmark keys": generating, deriving, inspecting
// and using signing keys of every suite as PEM files.
package keyscmd

import (
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Input limits of the signing commands.
const (
	maxMessage = 64 << 20 // messages to sign or verify
	maxSigFile = 64 << 10 // signatures
)

// New returns the keys command group.
// New returns the keys command group.
func New(s *cmdline.Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Generate, derive, inspect and use signing keys of every suite",
		Long: `Keys are PKCS #8 ("PRIVATE KEY") and PKIX SubjectPublicKeyInfo ("PUBLIC KEY")
PEM, readable by OpenSSL for ecdsa-p256 and ed25519. Suites: ` + strings.Join(sigalg.Names(), ", ") + `.
Every FILE argument may be "-" for standard input or output.`,
	}
	cmd.AddCommand(
		newKeysAlgorithmsCmd(s), newKeysGenerateCmd(s), newKeysDeriveCmd(s),
		newKeysPublicCmd(s), newKeysIdentityCmd(s), newKeysSignCmd(s), newKeysVerifyCmd(s),
	)
	return cmd
}

func newKeysAlgorithmsCmd(s *cmdline.Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "algorithms",
		Short: "List the signature suites",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SUITE\tOID\tMAX SIGNATURE BYTES")
			for _, suite := range sigalg.All() {
				fmt.Fprintf(tw, "%s\t%s\t%d\n", suite.ID(), suite.OID(), suite.SignatureSize())
			}
			return tw.Flush()
		},
	}
}

// keyOutput holds the flags shared by the commands that make a key pair.
type keyOutput struct {
	alg, out, pubOut string
	force            bool
}

func (o *keyOutput) bind(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.alg, "alg", "a", "", "signature suite: "+strings.Join(sigalg.Names(), ", ")+" (required)")
	cmd.Flags().StringVarP(&o.out, "out", "o", "-", "private key PEM `FILE` (written with mode 0600)")
	cmd.Flags().StringVar(&o.pubOut, "pub-out", "", "also write the public key PEM to `FILE`")
	cmd.Flags().BoolVar(&o.force, "force", false, "replace existing output files")
}

func (o *keyOutput) suite() (sigalg.Suite, error) {
	if o.alg == "" {
		return nil, cmdline.Usagef("--alg is required (one of %s)", strings.Join(sigalg.Names(), ", "))
	}
	suite, err := sigalg.Lookup(o.alg)
	if err != nil {
		return nil, cmdline.Usage(err)
	}
	return suite, nil
}

func (o *keyOutput) write(s *cmdline.Streams, key crypto.Signer) error {
	privPEM, err := sigalg.EncodePrivateKeyPEM(key)
	if err != nil {
		return err
	}
	outputs := []cmdline.FileOutput{{Path: o.out, Data: privPEM, Perm: 0o600}}
	if o.pubOut != "" {
		if cmdline.IsStdio(o.pubOut) && cmdline.IsStdio(o.out) {
			return cmdline.Usagef("--out and --pub-out cannot both be standard output")
		}
		pubPEM, err := sigalg.EncodePublicKeyPEM(key.Public())
		if err != nil {
			return err
		}
		outputs = append(outputs, cmdline.FileOutput{Path: o.pubOut, Data: pubPEM, Perm: 0o644})
	}
	return s.WriteOutputs(outputs, o.force)
}

func newKeysGenerateCmd(s *cmdline.Streams) *cobra.Command {
	var o keyOutput
	cmd := &cobra.Command{
		Use:   "generate --alg SUITE [--out FILE] [--pub-out FILE]",
		Short: "Generate a key pair from the system's random source",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			suite, err := o.suite()
			if err != nil {
				return err
			}
			key, err := suite.GenerateKey(rand.Reader)
			if err != nil {
				return fmt.Errorf("generate %s key: %w", suite.ID(), err)
			}
			return o.write(s, key)
		},
	}
	o.bind(cmd)
	return cmd
}

func newKeysDeriveCmd(s *cmdline.Streams) *cobra.Command {
	var o keyOutput
	var seedPath string
	cmd := &cobra.Command{
		Use:   "derive --alg SUITE --seed FILE [--out FILE]",
		Short: "Derive the key pair determined by a 32-byte seed",
		Long: `Derive the key pair determined by a 32-byte seed: the FIPS 204 seed for ML-DSA,
the RFC 8032 private key for Ed25519, and for ECDSA P-256 the first
HMAC-SHA256(seed, "hallmark sigalg ecdsa-p256 derive v1" || counter) that is a
valid scalar. The seed file holds 64 hex characters or 32 raw bytes; it is
read from a file, never from the command line, so it does not show in the
process list.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			suite, err := o.suite()
			if err != nil {
				return err
			}
			if seedPath == "" {
				return cmdline.Usagef("--seed FILE is required (64 hex characters or 32 raw bytes; - for standard input)")
			}
			if seedPath == cmdline.Stdio && (o.out == "" || o.out == cmdline.Stdio) && o.pubOut == cmdline.Stdio {
				return cmdline.Usagef("--pub-out cannot be standard output as well")
			}
			raw, err := s.ReadInput(seedPath, cmdline.MaxKeyFile, "seed")
			if err != nil {
				return err
			}
			seed, err := decodeSeed(raw)
			if err != nil {
				return err
			}
			key, err := suite.DeriveKey(seed)
			if err != nil {
				return err
			}
			return o.write(s, key)
		},
	}
	o.bind(cmd)
	cmd.Flags().StringVar(&seedPath, "seed", "", "seed `FILE` (- for standard input)")
	return cmd
}

// decodeSeed accepts exactly 32 raw bytes, or 64 hex characters with
// surrounding white space.
func decodeSeed(raw []byte) ([]byte, error) {
	if len(raw) == sigalg.SeedSize {
		return raw, nil
	}
	text := strings.TrimSpace(string(raw))
	if len(text) != 2*sigalg.SeedSize {
		return nil, fmt.Errorf("seed: %d bytes, want %d raw bytes or %d hex characters", len(raw), sigalg.SeedSize, 2*sigalg.SeedSize)
	}
	seed, err := hex.DecodeString(text)
	if err != nil {
		return nil, errors.New("seed: not 64 hexadecimal characters")
	}
	return seed, nil
}

func newKeysPublicCmd(s *cmdline.Streams) *cobra.Command {
	var out string
	var force bool
	cmd := &cobra.Command{
		Use:   "public [KEY]",
		Short: "Print the public key PEM of a private or public key",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			key, err := s.ReadKey(cmdline.ArgOrStdin(args))
			if err != nil {
				return err
			}
			pubPEM, err := sigalg.EncodePublicKeyPEM(cmdline.PublicOf(key))
			if err != nil {
				return err
			}
			return s.WriteOutput(out, pubPEM, 0o644, force)
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "-", "public key PEM `FILE`")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing output file")
	return cmd
}

func newKeysIdentityCmd(s *cmdline.Streams) *cobra.Command {
	var verbose bool
	cmd := &cobra.Command{
		Use:   "identity [KEY]",
		Short: "Print the device identity of a key: SHA-256 of its DER SubjectPublicKeyInfo",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			key, err := s.ReadKey(cmdline.ArgOrStdin(args))
			if err != nil {
				return err
			}
			pub := cmdline.PublicOf(key)
			id, err := identity.FromPublicKey(pub)
			if err != nil {
				return err
			}
			if verbose {
				suite, err := sigalg.SuiteOf(pub)
				if err != nil {
					return fmt.Errorf("identity: %w", err)
				}
				_, err = fmt.Fprintf(s.Out, "%s  %s\n", id, suite.ID())
				return err
			}
			_, err = fmt.Fprintln(s.Out, id)
			return err
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "also print the suite")
	return cmd
}

func newKeysSignCmd(s *cmdline.Streams) *cobra.Command {
	var keyPath, in, out string
	var force bool
	cmd := &cobra.Command{
		Use:   "sign --key KEY [--in FILE] [--out FILE]",
		Short: "Sign a whole message; the signature is written as raw bytes",
		Long: `Sign a whole message. ECDSA P-256 signatures are ASN.1 DER over SHA-256 of the
message (openssl dgst -sha256 -verify reads them); Ed25519 and ML-DSA sign the
message itself (ML-DSA with an empty context, hedged).`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if keyPath == "" {
				return cmdline.Usagef("--key FILE is required")
			}
			if keyPath == cmdline.Stdio && (in == "" || in == cmdline.Stdio) {
				return cmdline.Usagef("--key and --in cannot both be standard input")
			}
			key, err := s.ReadKey(keyPath)
			if err != nil {
				return err
			}
			signer, ok := key.(crypto.Signer)
			if !ok {
				return fmt.Errorf("sign: %s holds a public key; signing needs the private key", cmdline.DisplayPath(keyPath))
			}
			msg, err := s.ReadInput(in, maxMessage, "message")
			if err != nil {
				return err
			}
			suite, err := sigalg.SuiteOf(signer)
			if err != nil {
				return err
			}
			sig, err := suite.Sign(signer, msg)
			if err != nil {
				return err
			}
			return s.WriteOutput(out, sig, 0o644, force)
		},
	}
	cmd.Flags().StringVarP(&keyPath, "key", "k", "", "private key PEM `FILE`")
	cmd.Flags().StringVarP(&in, "in", "i", "-", "message `FILE`")
	cmd.Flags().StringVarP(&out, "out", "o", "-", "signature `FILE`")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing output file")
	return cmd
}

func newKeysVerifyCmd(s *cmdline.Streams) *cobra.Command {
	var keyPath, in, sigPath string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "verify --key KEY --sig FILE [--in FILE]",
		Short: "Verify a signature; exit status 0 if it is valid, 1 if not",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if keyPath == "" || sigPath == "" {
				return cmdline.Usagef("--key FILE and --sig FILE are required")
			}
			if cmdline.StdinCount(keyPath, sigPath, in) > 1 {
				return cmdline.Usagef("only one of --key, --sig and --in can be standard input")
			}
			key, err := s.ReadKey(keyPath)
			if err != nil {
				return err
			}
			sig, err := s.ReadInput(sigPath, maxSigFile, "signature")
			if err != nil {
				return err
			}
			msg, err := s.ReadInput(in, maxMessage, "message")
			if err != nil {
				return err
			}
			pub := cmdline.PublicOf(key)
			suite, err := sigalg.SuiteOf(pub)
			if err != nil {
				return err
			}
			if err := suite.Verify(pub, msg, sig); err != nil {
				return err
			}
			if !quiet {
				_, err = fmt.Fprintln(s.Out, "signature valid")
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&keyPath, "key", "k", "", "public (or private) key PEM `FILE`")
	cmd.Flags().StringVarP(&sigPath, "sig", "s", "", "signature `FILE`")
	cmd.Flags().StringVarP(&in, "in", "i", "-", "message `FILE`")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print nothing; report through the exit status only")
	return cmd
}
