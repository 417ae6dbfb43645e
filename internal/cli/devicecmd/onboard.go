package devicecmd

import (
	"crypto"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/onboarding/onboardpki"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

func newDeviceOnboardCmd(s *cmdline.Streams) *cobra.Command {
	var statePath, opAlg, chainOut string
	var pf cmdline.PlatformFlags
	cmd := &cobra.Command{
		Use:   "onboard --state STATE --server URL --ca-file ROOT.pem [--op-alg SUITE]",
		Short: "Onboard the device: prove its identity to the platform and store its credentials",
		Long: `Boot the device, offer its identity, sign the platform's challenge with the
enrolment key, send a CSR for the operational key (--op-alg) and store the
certificate chain, trust bundle and cloud endpoint in the device's flash.
The CSR names the device's identity and is bound to the platform's
challenge (docs/protocol.md).

The operational key is the device's TLS client key from then on (device
credentials, device connect): it must be ` + tlsSuiteNames() + `. TLS stacks
cannot sign with ML-DSA keys yet, so ML-DSA suites are refused here; the
enrolment key, which never meets TLS, may be ML-DSA.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			alg, err := operationalSuite(opAlg)
			if err != nil {
				return err
			}
			dev, err := loadDevice(statePath)
			if err != nil {
				return err
			}
			if err := dev.Boot(); err != nil {
				return err
			}
			httpc, err := pf.HTTPClient(s, nil)
			if err != nil {
				return err
			}
			client, err := httpapi.NewOnboardingClient(pf.Server, httpc, onboardpki.CSRs{})
			if err != nil {
				return err
			}
			got, err := client.OnboardDevice(cmd.Context(), dev, alg, nil)
			if err != nil {
				return err
			}
			return keepCredentialsTo(s, dev, statePath, chainOut, got.Credentials, alg)
		},
	}
	bindState(cmd, &statePath)
	bindChainOut(cmd, &chainOut)
	pf.Bind(cmd)
	cmd.Flags().StringVar(&opAlg, "op-alg", string(sigalg.ECDSAP256), "operational key `SUITE`, the device's TLS client key: "+tlsSuiteNames())
	return cmd
}

func bindChainOut(cmd *cobra.Command, path *string) {
	cmd.Flags().StringVar(path, "chain-out", "", "also write the certificate chain to `FILE` (PEM, leaf first; - for stdout)")
}

// tlsClientSuites are the operational suites a device can use: every use
// of its credentials after onboarding is mutual TLS with the operational
// key, and crypto/tls (like other TLS stacks today) signs with ECDSA and
// Ed25519 keys but not ML-DSA ones (decision 0004). A device onboarded
// with an ML-DSA operational key could never present its certificate.
var tlsClientSuites = []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519}

func tlsSuiteNames() string {
	names := make([]string, len(tlsClientSuites))
	for i, id := range tlsClientSuites {
		names[i] = string(id)
	}
	return strings.Join(names, " or ")
}

// operationalSuite checks --op-alg: a known suite mutual TLS can use.
func operationalSuite(opAlg string) (sigalg.ID, error) {
	suite, err := sigalg.Lookup(opAlg)
	if err != nil {
		return "", cmdline.Usage(err)
	}
	if !slices.Contains(tlsClientSuites, suite.ID()) {
		return "", cmdline.Usagef("--op-alg %s: the operational key is the device's TLS client key, and TLS cannot sign with %s; use %s",
			suite.ID(), suite.ID(), tlsSuiteNames())
	}
	return suite.ID(), nil
}

func keepCredentials(s *cmdline.Streams, dev *device.Device, statePath string, creds *onboarding.Credentials, alg sigalg.ID) error {
	return keepCredentialsTo(s, dev, statePath, "", creds, alg)
}

// keepCredentialsTo stores the credentials in the device state and, with a
// chainOut path, writes the certificate chain there too (PEM, leaf first)
// for tools that read certificates, such as openssl verify. The state is
// saved first: a chain file that cannot be written loses nothing.
func keepCredentialsTo(s *cmdline.Streams, dev *device.Device, statePath, chainOut string, creds *onboarding.Credentials, alg sigalg.ID) error {
	dev.SetCredentials(device.Credentials{CertificateChain: creds.CertificateChain, TrustBundle: creds.TrustBundle,
		CloudEndpoint: creds.CloudEndpoint, OperationalAlg: alg})
	if err := dev.Save(statePath); err != nil {
		return err
	}
	if chainOut != "" {
		if err := s.WriteOutput(chainOut, []byte(strings.Join(creds.CertificateChain, "")), 0o644, true); err != nil {
			return fmt.Errorf("write the certificate chain: %w", err)
		}
	}
	_, err := fmt.Fprintf(s.Out, "onboarded %s\ncertificate valid until %s\ncloud endpoint %s\n",
		creds.Identity, creds.NotAfter.Format(time.RFC3339), cmdline.Safe(creds.CloudEndpoint))
	return err
}

func newDeviceCredentialsCmd(s *cmdline.Streams) *cobra.Command {
	var statePath, chainOut string
	var renew bool
	var pf cmdline.PlatformFlags
	cmd := &cobra.Command{
		Use:   "credentials --state STATE --server URL --ca-file ROOT.pem [--renew]",
		Short: "Fetch (or, with --renew, renew) the credentials over mutual TLS with the device certificate",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dev, held, cert, err := onboardedDevice(statePath, "credentials")
			if err != nil {
				return err
			}
			opKey := cert.PrivateKey.(crypto.Signer)
			httpc, err := pf.HTTPClient(s, cert)
			if err != nil {
				return err
			}
			client, err := httpapi.NewOnboardingClient(pf.Server, httpc, onboardpki.CSRs{})
			if err != nil {
				return err
			}
			var creds *onboarding.Credentials
			if renew {
				var id identity.ID
				if id, err = dev.Identity(); err == nil {
					creds, err = client.RenewWithKey(cmd.Context(), id, opKey)
				}
			} else {
				creds, err = client.Credentials(cmd.Context())
			}
			if err != nil {
				return err
			}
			return keepCredentialsTo(s, dev, statePath, chainOut, creds, held.OperationalAlg)
		},
	}
	bindState(cmd, &statePath)
	bindChainOut(cmd, &chainOut)
	pf.Bind(cmd)
	cmd.Flags().BoolVar(&renew, "renew", false, "ask for a new certificate")
	return cmd
}

// onboardedDevice loads and boots an onboarded device and returns its
// stored credentials and its TLS client certificate (the issued chain with
// the operational key). what names the command in errors.
func onboardedDevice(statePath, what string) (*device.Device, *device.Credentials, *tls.Certificate, error) {
	dev, err := loadDevice(statePath)
	if err != nil {
		return nil, nil, nil, err
	}
	held := dev.Credentials()
	if held == nil {
		return nil, nil, nil, fmt.Errorf("%s: the device is not onboarded (run hallmark device onboard)", what)
	}
	// Credentials onboarded before ML-DSA operational keys were refused:
	// the platform would answer "not recognised", hiding the reason.
	if !slices.Contains(tlsClientSuites, held.OperationalAlg) {
		return nil, nil, nil, fmt.Errorf("%s: the device's operational key is %s, which TLS cannot sign with, so it cannot present "+
			"its certificate; onboard it again with --op-alg %s", what, held.OperationalAlg, tlsSuiteNames())
	}
	if err := dev.Boot(); err != nil {
		return nil, nil, nil, err
	}
	opKey, err := dev.OperationalKey(held.OperationalAlg)
	if err != nil {
		return nil, nil, nil, err
	}
	cert, err := tlsCertificate(held.CertificateChain, opKey)
	if err != nil {
		return nil, nil, nil, err
	}
	return dev, held, cert, nil
}

// tlsCertificate assembles the TLS client certificate from the stored PEM
// chain and the operational key.
func tlsCertificate(chainPEM []string, key crypto.Signer) (*tls.Certificate, error) {
	cert := &tls.Certificate{PrivateKey: key}
	for _, p := range chainPEM {
		block, _ := pem.Decode([]byte(p))
		if block == nil || block.Type != "CERTIFICATE" {
			return nil, errors.New("credentials: the stored certificate chain is not PEM")
		}
		cert.Certificate = append(cert.Certificate, block.Bytes)
	}
	if len(cert.Certificate) == 0 {
		return nil, errors.New("credentials: no certificate stored")
	}
	leaf, err := pki.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, err
	}
	cert.Leaf = leaf
	return cert, nil
}
