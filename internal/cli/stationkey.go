package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/keys"
	_ "github.com/hallmark-iot/hallmark/internal/keys/softkms" // the soft: key store
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// keyStoreFlags are the flags of every command that opens the station's
// key store.
type keyStoreFlags struct {
	keystore, name, passFile string
}

func (f *keyStoreFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.keystore, "keystore", "", "key store `DIR` (or a key manager URI such as soft:/path)")
	cmd.Flags().StringVar(&f.name, "name", "station", "key `NAME` in the store")
	cmd.Flags().StringVar(&f.passFile, "passphrase-file", "", "key store passphrase `FILE` (default: $HALLMARK_KEYSTORE_PASSPHRASE)")
}

func newStationKeyCmd(s *streams) *cobra.Command {
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

func newStationKeyCreateCmd(s *streams) *cobra.Command {
	var f keyStoreFlags
	var alg, pubOut string
	var force bool
	cmd := &cobra.Command{
		Use:   "create --keystore DIR [--name station] [--alg ml-dsa-65] [--pub-out FILE]",
		Short: "Create a station key (and the key store, if DIR holds none)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			suite, err := sigalg.Lookup(alg)
			if err != nil {
				return usageError{err}
			}
			m, err := s.openStore(cmd.Context(), f, true)
			if err != nil {
				return err
			}
			defer m.Close()
			pub, err := m.CreateKey(cmd.Context(), keys.CreateKeyRequest{Name: f.name, Suite: suite.ID()})
			if err != nil {
				return err
			}
			return s.reportStationKey(pub, f.name, pubOut, force)
		},
	}
	f.bind(cmd)
	cmd.Flags().StringVarP(&alg, "alg", "a", string(sigalg.MLDSA65), "signature suite: "+strings.Join(sigalg.Names(), ", "))
	cmd.Flags().StringVar(&pubOut, "pub-out", "", "also write the public key PEM to `FILE` (- for standard output)")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing --pub-out file")
	return cmd
}

// reportStationKey writes the public key PEM where asked and otherwise
// prints the station identity, which names the station in manifests.
func (s *streams) reportStationKey(pub any, name, pubOut string, force bool) error {
	if pubOut != "" {
		pem, err := sigalg.EncodePublicKeyPEM(pub)
		if err != nil {
			return err
		}
		if err := s.writeOutput(pubOut, pem, 0o644, force); err != nil {
			return err
		}
		if pubOut == stdioMarker {
			return nil
		}
	}
	id, err := identity.FromPublicKey(pub)
	if err != nil {
		return err
	}
	suite, _ := sigalg.SuiteOf(pub)
	_, err = fmt.Fprintf(s.out, "created key %q (%s)\nstation identity: %s\n", name, suite.ID(), id)
	return err
}

func newStationKeyPublicCmd(s *streams) *cobra.Command {
	var f keyStoreFlags
	var out string
	var force bool
	cmd := &cobra.Command{
		Use:   "public --keystore DIR [--name station] [--out FILE]",
		Short: "Print the station public key PEM, which verifiers of its manifests need",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := s.openStore(cmd.Context(), f, false)
			if err != nil {
				return err
			}
			defer m.Close()
			pub, err := m.PublicKey(cmd.Context(), f.name)
			if err != nil {
				return err
			}
			pem, err := sigalg.EncodePublicKeyPEM(pub)
			if err != nil {
				return err
			}
			return s.writeOutput(out, pem, 0o644, force)
		},
	}
	f.bind(cmd)
	cmd.Flags().StringVarP(&out, "out", "o", "-", "public key PEM `FILE`")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing output file")
	return cmd
}

// openKeyStore opens an existing key store for the station: a missing
// store is an error, not a new empty one.
func (s *streams) openKeyStore(ctx context.Context, keystore, passFile string) (keys.Manager, error) {
	return s.openStore(ctx, keyStoreFlags{keystore: keystore, passFile: passFile}, false)
}

func (s *streams) openStore(ctx context.Context, f keyStoreFlags, create bool) (keys.Manager, error) {
	if f.keystore == "" {
		return nil, usagef("--keystore DIR is required")
	}
	pass, err := s.passphrase(f.passFile)
	if err != nil {
		return nil, err
	}
	defer clear(pass)
	return keys.Open(ctx, keyStoreURI(f.keystore), keys.Options{Passphrase: pass, Create: create})
}

// keyStoreURI turns a plain directory into a soft: URI and leaves URIs of
// a known scheme alone.
func keyStoreURI(keystore string) string {
	scheme, _, ok := strings.Cut(keystore, ":")
	if ok {
		for _, known := range append(keys.Schemes(), "pkcs11", "tpm") {
			if scheme == known {
				return keystore
			}
		}
	}
	return "soft:" + keystore
}
