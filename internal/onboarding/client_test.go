package onboarding_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/onboarding/onboardpki"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// verifier checks an issued chain against p's CA, as the demo does.
func (p *platform) verifier() onboarding.ChainVerifier {
	return func(chain [][]byte, id identity.ID) (*x509.Certificate, error) {
		leaf, got, err := p.ca.VerifyDevice(chain, p.clock())
		if err == nil && got != id {
			err = fmt.Errorf("the leaf names %s", got)
		}
		return leaf, err
	}
}

// TestClientAgainstServiceInProcess runs the real device client against
// the real service with no network: onboarding with a request bound to
// the challenge, the device routes as the certificate issued, a renewal
// bound to the connection's channel binding.
func TestClientAgainstServiceInProcess(t *testing.T) {
	p := newPlatform(t, sigalg.ECDSAP256)
	ctx := context.Background()
	d, id := p.newDevice(t, device.ClassKeygen, sigalg.Ed25519)
	tr := onboarding.InProcess{Service: p.svc, Source: "192.0.2.7"}
	client := &onboarding.Client{Transport: tr, ServerName: serverName, CSRs: onboardpki.CSRs{}}

	relayed := &onboarding.Client{Transport: tr, ServerName: "relay.test", CSRs: onboardpki.CSRs{}}
	if _, err := relayed.OnboardDevice(ctx, d, sigalg.ECDSAP256, nil); err == nil || !strings.Contains(err.Error(), `challenge is for server "hallmark.test"`) {
		t.Fatalf("a challenge for another server name: %v", err)
	}
	if _, err := client.Credentials(ctx); !errors.Is(err, onboarding.ErrNotOnboarded) {
		t.Fatalf("the device routes without a certificate: %v, want ErrNotOnboarded", err)
	}

	got, err := client.OnboardDevice(ctx, d, sigalg.ECDSAP256, p.verifier())
	if err != nil {
		t.Fatal(err)
	}
	if got.Identity != id || got.Leaf == nil || len(got.Chain) != 2 || got.Credentials.CloudEndpoint != "mqtts://broker.test:8883" {
		t.Fatalf("onboarded %+v", got)
	}
	if dev, _ := p.store.GetDevice(ctx, id); dev.State != store.StateOnboarded {
		t.Fatalf("device state %s", dev.State)
	}

	tr.Leaf, tr.ChannelBinding = got.Leaf, []byte("the connection's exporter value")
	client.Transport = tr
	creds, err := client.Credentials(ctx)
	if err != nil || creds.Identity != id || creds.CertificateChain[0] != got.Credentials.CertificateChain[0] {
		t.Fatalf("credentials: %+v, %v", creds, err)
	}
	unbound, _ := pki.CreateCSR(got.Operational, id.String())
	if _, err := client.Renew(ctx, unbound); !errors.Is(err, onboarding.ErrBadCSR) {
		t.Fatalf("a renewal not bound to the connection: %v, want ErrBadCSR", err)
	}
	renewed, err := client.RenewWithKey(ctx, id, got.Operational)
	if err != nil {
		t.Fatalf("renew bound to the connection: %v", err)
	}
	if renewed.Identity != id || renewed.CertificateChain[0] == got.Credentials.CertificateChain[0] {
		t.Fatalf("renewal %+v issued no new certificate", renewed)
	}
	if certs, _ := p.store.ListCertificates(ctx, id); len(certs) != 2 {
		t.Fatalf("%d certificates, want 2", len(certs))
	}
}

// TestOnboardDeviceChecksWhatComesBack: credentials whose leaf does not
// verify are ErrChainInvalid, and the failure of the verifier is kept.
func TestOnboardDeviceChecksWhatComesBack(t *testing.T) {
	p := newPlatform(t, sigalg.ECDSAP256)
	d, _ := p.newDevice(t, device.ClassPUF, sigalg.MLDSA44)
	client := &onboarding.Client{Transport: onboarding.InProcess{Service: p.svc, Source: "192.0.2.8"}, ServerName: serverName, CSRs: onboardpki.CSRs{}}
	refuse := errors.New("untrusted root")
	_, err := client.OnboardDevice(context.Background(), d, sigalg.ECDSAP256, func([][]byte, identity.ID) (*x509.Certificate, error) {
		return nil, refuse
	})
	if !errors.Is(err, onboarding.ErrChainInvalid) || !errors.Is(err, refuse) {
		t.Fatalf("OnboardDevice with a refusing verifier: %v", err)
	}
}
