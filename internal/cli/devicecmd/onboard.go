package devicecmd

import (
	"crypto"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
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
	var statePath, opAlg string
	var pf cmdline.PlatformFlags
	cmd := &cobra.Command{
		Use:   "onboard --state STATE --server URL --ca-file ROOT.pem [--op-alg SUITE]",
		Short: "Onboard the device: prove its identity to the platform and store its credentials",
		Long: `Boot the device, offer its identity, sign the platform's challenge with the
enrolment key, send a CSR for the operational key (--op-alg; ecdsa-p256 by
default, since TLS stacks cannot use ML-DSA client keys yet) and store the
certificate chain, trust bundle and cloud endpoint in the device's flash.
The CSR names the device's identity and is bound to the platform's
challenge (docs/protocol.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dev, err := loadDevice(statePath)
			if err != nil {
				return err
			}
			if _, err := bootForOnboarding(dev, opAlg); err != nil {
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
			got, err := client.OnboardDevice(cmd.Context(), dev, sigalg.ID(opAlg), nil)
			if err != nil {
				return err
			}
			return keepCredentials(s, dev, statePath, got.Credentials, opAlg)
		},
	}
	bindState(cmd, &statePath)
	pf.Bind(cmd)
	cmd.Flags().StringVar(&opAlg, "op-alg", string(sigalg.ECDSAP256), "operational key suite")
	return cmd
}

// bootForOnboarding powers the device up and returns its operational key.
func bootForOnboarding(dev *device.Device, opAlg string) (crypto.Signer, error) {
	suite, err := sigalg.Lookup(opAlg)
	if err != nil {
		return nil, cmdline.Usage(err)
	}
	if err := dev.Boot(); err != nil {
		return nil, err
	}
	return dev.OperationalKey(suite.ID())
}

func keepCredentials(s *cmdline.Streams, dev *device.Device, statePath string, creds *onboarding.Credentials, opAlg string) error {
	suite, _ := sigalg.Lookup(opAlg)
	dev.SetCredentials(device.Credentials{CertificateChain: creds.CertificateChain, TrustBundle: creds.TrustBundle,
		CloudEndpoint: creds.CloudEndpoint, OperationalAlg: suite.ID()})
	if err := dev.Save(statePath); err != nil {
		return err
	}
	_, err := fmt.Fprintf(s.Out, "onboarded %s\ncertificate valid until %s\ncloud endpoint %s\n",
		creds.Identity, creds.NotAfter.Format(time.RFC3339), cmdline.Safe(creds.CloudEndpoint))
	return err
}

func newDeviceCredentialsCmd(s *cmdline.Streams) *cobra.Command {
	var statePath string
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
			return keepCredentials(s, dev, statePath, creds, string(held.OperationalAlg))
		},
	}
	bindState(cmd, &statePath)
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
	opKey, err := bootForOnboarding(dev, string(held.OperationalAlg))
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
