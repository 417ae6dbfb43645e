package cmdline

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/keys"
	_ "github.com/hallmark-iot/hallmark/internal/keys/pkcs11kms" // the pkcs11: key store (an HSM)
	_ "github.com/hallmark-iot/hallmark/internal/keys/softkms"   // the soft: key store
	_ "github.com/hallmark-iot/hallmark/internal/keys/tpmkms"    // the tpm: key store (a TPM 2.0)
	"github.com/hallmark-iot/hallmark/internal/pki"
)

// PlatformFlags locate the platform and the root that authenticates it,
// for the commands that talk to it as a device does.
type PlatformFlags struct {
	Server, CAFile string
}

// Bind adds --server and --ca-file to cmd, each settable from the
// environment (HALLMARK_SERVER, HALLMARK_CA_FILE).
func (f *PlatformFlags) Bind(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.Server, "server", "", "platform `URL`, e.g. https://localhost:8443")
	fl.StringVar(&f.CAFile, "ca-file", "", "the platform's TLS root certificate `FILE`: "+pki.TLSTrustFile+" in serve's data directory")
	BindEnv(fl, EnvPrefix, "server", "ca-file")
}

// HTTPClient is the one HTTP client the commands make for the platform:
// TLS 1.3 (pki.ClientTLSConfig), trusting only the roots in --ca-file,
// and presenting cert when it is given.
func (f PlatformFlags) HTTPClient(s *Streams, cert *tls.Certificate) (*http.Client, error) {
	if f.Server == "" || f.CAFile == "" {
		return nil, Usagef("--server URL and --ca-file FILE are required")
	}
	roots, err := s.ReadTrustBundle(f.CAFile, "CA certificate")
	if err != nil {
		return nil, err
	}
	return PlatformHTTPClient(roots, cert), nil
}

// PlatformHTTPClient is HTTPClient for roots already in hand (a platform
// the command started itself).
func PlatformHTTPClient(roots *x509.CertPool, cert *tls.Certificate) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: pki.ClientTLSConfig(roots, cert), ForceAttemptHTTP2: true}}
}

// ReadTrustBundle reads the PEM roots a TLS client trusts from path (or
// standard input) with pki.ParseTrustBundle, the one parser of trust
// bundles: a file of roots TLS cannot use (the ML-DSA root.pem) is an
// error naming the file TLS clients need (ca/tls-root.pem). what names
// the file in errors.
func (s *Streams) ReadTrustBundle(path, what string) (*x509.CertPool, error) {
	data, err := s.ReadInput(path, MaxKeyFile, what)
	if err != nil {
		return nil, err
	}
	roots, err := pki.ParseTrustBundle(data)
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", what, DisplayPath(path), err)
	}
	return roots, nil
}

// KeyStorePassphraseEnv holds the station key store's passphrase when no
// --passphrase-file is given.
const KeyStorePassphraseEnv = "HALLMARK_KEYSTORE_PASSPHRASE"

// KeyStoreFlags are the flags of every command that opens a key store:
// the station's, or a vendor's holding firmware signing roots.
type KeyStoreFlags struct {
	Keystore, Name, PassFile string
}

// Bind adds --keystore, --name and --passphrase-file to cmd.
func (f *KeyStoreFlags) Bind(cmd *cobra.Command) {
	f.BindStore(cmd)
	cmd.Flags().StringVar(&f.Name, "name", "station", "key `NAME` in the store")
}

// BindStore adds --keystore and --passphrase-file only, for commands that
// name their keys with flags of their own.
func (f *KeyStoreFlags) BindStore(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.Keystore, "keystore", "", "key store `DIR`, or a key manager URI: soft:/path, pkcs11:token=…?module-path=…&pin-source=file:…")
	cmd.Flags().StringVar(&f.PassFile, "passphrase-file", "", "key store passphrase or token PIN `FILE` (default: $"+KeyStorePassphraseEnv+")")
}

// Open opens the key store; create makes a new one when the directory
// holds none, and otherwise a missing store is an error, not a new empty
// one.
//
// The secret is --passphrase-file, else $HALLMARK_KEYSTORE_PASSPHRASE. A
// software store needs one. A token may have its PIN from its URI's
// pin-source or $HALLMARK_PKCS11_PIN instead, which its backend prefers,
// so there it is optional and the backend says when no source had a PIN.
func (f KeyStoreFlags) Open(ctx context.Context, s *Streams, create bool) (keys.Manager, error) {
	if f.Keystore == "" {
		return nil, Usagef("--keystore DIR is required")
	}
	uri := keyStoreURI(f.Keystore)
	var pass []byte
	if f.PassFile != "" || os.Getenv(KeyStorePassphraseEnv) != "" || strings.HasPrefix(uri, "soft:") {
		var err error
		if pass, err = s.Secret(f.PassFile, KeyStorePassphraseEnv); err != nil {
			return nil, err
		}
	}
	defer clear(pass)
	return keys.Open(ctx, uri, keys.Options{Passphrase: pass, Create: create})
}

// keyStoreURI turns a plain directory into a soft: URI and leaves URIs of
// a registered scheme alone.
func keyStoreURI(keystore string) string {
	scheme, _, ok := strings.Cut(keystore, ":")
	if ok {
		for _, known := range keys.Schemes() {
			if scheme == known {
				return keystore
			}
		}
	}
	return "soft:" + keystore
}
