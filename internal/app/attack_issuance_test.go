package app

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Issue 10, items 6 and 7: what an onboarded (or onboarding) device can
// get certified, and how often, attacked over HTTPS.

// startIssuance starts a platform with policy and clock and registers f.
func startIssuance(t *testing.T, f *fleet, policy onboarding.IssuancePolicy, clock *testClock) *Platform {
	t.Helper()
	cfg := Config{DataDir: newDataDir(t), Listen: "127.0.0.1:0", ServerName: "localhost", CASuite: sigalg.ECDSAP256, Issuance: policy}
	if clock != nil {
		cfg.Now = clock.now
	}
	p, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	f.register(t, adminClient(t, p))
	return p
}

// issuanceOnboard onboards device i of f the way a current device does
// (its CSR bound to the challenge) with operational key op, and returns
// its TLS client certificate.
func issuanceOnboard(t *testing.T, p *Platform, f *fleet, i int, op crypto.Signer) *tls.Certificate {
	t.Helper()
	c := deviceClient(p.URL(), tlsClient(p, nil))
	creds, err := c.OnboardWithKey(context.Background(), f.devices[i], f.ids[i], op)
	if err != nil {
		t.Fatalf("onboard device %d: %v", i, err)
	}
	return issuanceCert(t, creds, op)
}

func issuanceCert(t *testing.T, creds *onboarding.Credentials, op crypto.Signer) *tls.Certificate {
	t.Helper()
	cert := &tls.Certificate{PrivateKey: op}
	for _, c := range creds.CertificateChain {
		block, _ := pem.Decode([]byte(c))
		cert.Certificate = append(cert.Certificate, block.Bytes)
	}
	return cert
}

func issuanceOpKey(t *testing.T, d *device.Device) crypto.Signer {
	t.Helper()
	op, err := d.OperationalKey(sigalg.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	return op
}

// issuanceChallenge asks for a challenge for id as anyone can.
func issuanceChallenge(t *testing.T, p *Platform, id identity.ID) (onboarding.ChallengeResponse, [onboarding.ChallengeIDSize]byte) {
	t.Helper()
	resp, err := tlsClient(p, nil).Post(p.URL()+httpapi.PathOnboardChallenge, "application/json", strings.NewReader(`{"identity":"`+id.String()+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ch onboarding.ChallengeResponse
	if err := json.NewDecoder(resp.Body).Decode(&ch); err != nil {
		t.Fatal(err)
	}
	raw, _ := hex.DecodeString(ch.ChallengeID)
	return ch, [onboarding.ChallengeIDSize]byte(raw)
}

// issuanceProve answers ch for device d (identity id) with csr, signed by
// d's enrolment key: a good proof. It returns the status and problem code.
func issuanceProve(t *testing.T, p *Platform, d *device.Device, id identity.ID, ch onboarding.ChallengeResponse,
	chID [onboarding.ChallengeIDSize]byte, csr []byte) (int, string) {
	t.Helper()
	_, sig, err := d.Prove(onboarding.ProofContext, onboarding.Transcript(chID, ch.Nonce, ch.ServerName, csr))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(onboarding.ProofRequest{ChallengeID: ch.ChallengeID, Identity: id, CSR: csr, Signature: sig})
	resp, err := tlsClient(p, nil).Post(p.URL()+httpapi.PathOnboardProof, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var prob struct{ Code string }
	json.NewDecoder(resp.Body).Decode(&prob)
	return resp.StatusCode, prob.Code
}

// issuanceCerts is the admin view of a device's certificates.
func issuanceCerts(t *testing.T, p *Platform, id identity.ID) []httpapi.Certificate {
	t.Helper()
	dev, err := adminClient(t, p).GetDevice(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return dev.Certificates
}

// TestAttackIssuanceForeignCSR: device B, with its own good proof,
// submits device A's certificate request (public data: A sent it to the
// platform, bound to A's exchange, or made one without a binding). B gets
// nothing, under the default policy and under a required binding; and B
// cannot lift a request of its own from an earlier exchange either.
func TestAttackIssuanceForeignCSR(t *testing.T) {
	t.Parallel()
	for _, required := range []bool{false, true} {
		t.Run(map[bool]string{false: "binding-optional", true: "binding-required"}[required], func(t *testing.T) {
			f := newFleet(t, sigalg.Ed25519, sigalg.ECDSAP256)
			p := startIssuance(t, f, onboarding.IssuancePolicy{AllowUnboundCSR: !required}, nil)
			a, b := 0, 1
			opA := issuanceOpKey(t, f.devices[a])
			chA, chAID := issuanceChallenge(t, p, f.ids[a])
			boundA, _ := pki.CreateCSRWith(opA, pki.CSROptions{CommonName: f.ids[a].String(),
				ChallengePassword: onboarding.CSRBinding(chAID, chA.Nonce, chA.ServerName)})
			plainA, _ := pki.CreateCSR(opA, f.ids[a].String())
			// B's own earlier request, bound to an exchange now over.
			opB := issuanceOpKey(t, f.devices[b])
			chOld, chOldID := issuanceChallenge(t, p, f.ids[b])
			staleB, _ := pki.CreateCSRWith(opB, pki.CSROptions{CommonName: f.ids[b].String(),
				ChallengePassword: onboarding.CSRBinding(chOldID, chOld.Nonce, chOld.ServerName)})
			for name, csr := range map[string][]byte{"A's bound request": boundA, "A's unbound request": plainA, "B's stale request": staleB} {
				ch, chID := issuanceChallenge(t, p, f.ids[b])
				if status, code := issuanceProve(t, p, f.devices[b], f.ids[b], ch, chID, csr); status != 422 || code != "bad-csr" {
					t.Errorf("%s with B's proof: %d %q, want 422 bad-csr", name, status, code)
				}
			}
			if certs := issuanceCerts(t, p, f.ids[b]); len(certs) != 0 {
				t.Fatalf("device B holds %d certificates", len(certs))
			}
			// A's own request, in A's own exchange, still works.
			if status, code := issuanceProve(t, p, f.devices[a], f.ids[a], chA, chAID, boundA); status != 200 {
				t.Fatalf("A's own proof: %d %q", status, code)
			}
		})
	}
}

// TestAttackIssuanceSharedOperationalKey: a second device, in its own
// properly bound request, asks to be certified for an operational key
// already certified for the first (a cloned or shared key). Refused, on
// onboarding and on renewal; the first device keeps its key across its own
// renewal.
func TestAttackIssuanceSharedOperationalKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFleet(t, sigalg.ECDSAP256, sigalg.MLDSA65)
	p := startIssuance(t, f, onboarding.IssuancePolicy{}, nil)
	shared := issuanceOpKey(t, f.devices[0])
	certA := issuanceOnboard(t, p, f, 0, shared)

	anyone := deviceClient(p.URL(), tlsClient(p, nil))
	if _, err := anyone.OnboardWithKey(ctx, f.devices[1], f.ids[1], shared); !isProblem(err, "bad-csr") {
		t.Fatalf("device B onboarding with A's key: %v, want bad-csr", err)
	}
	if certs := issuanceCerts(t, p, f.ids[1]); len(certs) != 0 {
		t.Fatalf("device B holds %d certificates", len(certs))
	}
	// B onboards with a key of its own, then tries to renew onto A's.
	certB := issuanceOnboard(t, p, f, 1, issuanceOpKey(t, f.devices[1]))
	asB := deviceClient(p.URL(), tlsClient(p, certB))
	if _, err := asB.RenewWithKey(ctx, f.ids[1], shared); !isProblem(err, "bad-csr") {
		t.Fatalf("device B renewing onto A's key: %v, want bad-csr", err)
	}
	if certs := issuanceCerts(t, p, f.ids[1]); len(certs) != 1 {
		t.Fatalf("device B holds %d certificates, want 1", len(certs))
	}
	asA := deviceClient(p.URL(), tlsClient(p, certA))
	if _, err := asA.RenewWithKey(ctx, f.ids[0], shared); err != nil {
		t.Fatalf("device A renewing its own key: %v", err)
	}
}

// TestAttackIssuanceRenewalBurst: an onboarded device asks for 20
// renewals at once. Only the limit's worth succeed (3 certificates an
// hour, its onboarding included); the rest are refused, as over the limit
// or, once two renewals have replaced it in turn, for a certificate
// superseded. Renewing on with the newest certificate is over the limit
// and told when to retry, and the device keeps one current certificate.
func TestAttackIssuanceRenewalBurst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFleet(t, sigalg.ECDSAP256)
	p := startIssuance(t, f, onboarding.IssuancePolicy{RenewLimit: 3, RenewWindow: time.Hour}, nil)
	op := issuanceOpKey(t, f.devices[0])
	cert := issuanceOnboard(t, p, f, 0, op)
	mtls := deviceClient(p.URL(), tlsClient(p, cert))
	const burst = 20
	var mu sync.Mutex
	var issued []*onboarding.Credentials
	var refused atomic.Int32
	var wg sync.WaitGroup
	for range burst {
		wg.Go(func() {
			creds, err := mtls.RenewWithKey(ctx, f.ids[0], op)
			switch {
			case err == nil:
				mu.Lock()
				issued = append(issued, creds)
				mu.Unlock()
			case isProblem(err, "renewal-too-soon"), isProblem(err, "certificate-superseded"):
				refused.Add(1)
			default:
				t.Errorf("renewal: %v", err)
			}
		})
	}
	wg.Wait()
	if len(issued) != 2 || refused.Load() != burst-2 {
		t.Fatalf("%d renewals issued, %d refused; want 2 and %d", len(issued), refused.Load(), burst-2)
	}
	certs := issuanceCerts(t, p, f.ids[0])
	current := ""
	for _, c := range certs {
		if c.SupersededAt == nil {
			current += c.Serial
		}
	}
	if len(certs) != 3 || len(current) != 32 {
		t.Fatalf("%d certificates, current %q; want 3 and one current", len(certs), current)
	}
	var newest *tls.Certificate
	for _, creds := range issued {
		c := issuanceCert(t, creds, op)
		if leaf, err := pki.ParseCertificate(c.Certificate[0]); err == nil && hex.EncodeToString(leaf.SerialNumber.FillBytes(make([]byte, 16))) == current {
			newest = c
		}
	}
	if newest == nil {
		t.Fatal("neither renewal is the current certificate")
	}
	asNewest := deviceClient(p.URL(), tlsClient(p, newest))
	_, err := asNewest.RenewWithKey(ctx, f.ids[0], op)
	var prob *httpapi.Problem
	if !isProblem(err, "renewal-too-soon") || !errors.As(err, &prob) || prob.Status != 429 ||
		prob.RetryAfter < 59*time.Minute || prob.RetryAfter > time.Hour {
		t.Fatalf("renewing on with the newest certificate: %v, want 429 renewal-too-soon with Retry-After about an hour", err)
	}
	if certs := issuanceCerts(t, p, f.ids[0]); len(certs) != 3 {
		t.Fatalf("%d certificates after the refusal, want 3", len(certs))
	}
}

// TestAttackIssuanceGraceAfterRenewal: after a renewal the replaced
// certificate keeps working on the device routes for the configured grace,
// and is refused after it; the one replaced before it has no grace left
// once a later renewal replaces its successor.
func TestAttackIssuanceGraceAfterRenewal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := &testClock{}
	f := newFleet(t, sigalg.Ed25519)
	p := startIssuance(t, f, onboarding.IssuancePolicy{SupersededGrace: 2 * time.Minute}, clock)
	op := issuanceOpKey(t, f.devices[0])
	first := issuanceOnboard(t, p, f, 0, op)
	asFirst := deviceClient(p.URL(), tlsClient(p, first))
	renewed, err := asFirst.RenewWithKey(ctx, f.ids[0], op)
	if err != nil {
		t.Fatal(err)
	}
	second := issuanceCert(t, renewed, op)
	asSecond := deviceClient(p.URL(), tlsClient(p, second))

	clock.advance(time.Minute + 50*time.Second)
	got, err := asFirst.Credentials(ctx)
	if err != nil || got.CertificateChain[0] != renewed.CertificateChain[0] {
		t.Fatalf("the replaced certificate within its grace: %v (it must be handed the new one)", err)
	}
	clock.advance(15 * time.Second)
	for _, try := range []func() error{
		func() error { _, err := asFirst.Credentials(ctx); return err },
		func() error { _, err := asFirst.RenewWithKey(ctx, f.ids[0], op); return err },
	} {
		if err := try(); !isProblem(err, "certificate-superseded") {
			t.Fatalf("the replaced certificate after its grace: %v, want certificate-superseded", err)
		}
	}
	if _, err := asSecond.Credentials(ctx); err != nil {
		t.Fatalf("the current certificate: %v", err)
	}
	certs := issuanceCerts(t, p, f.ids[0])
	if len(certs) != 2 || certs[0].SupersededAt != nil || certs[1].SupersededAt == nil {
		t.Fatalf("admin view: %+v, want the renewal current and the first superseded", certs)
	}
}

// TestAttackIssuanceReonboardingSupersedes: onboarding again (a fresh
// challenge and proof) replaces the earlier certificate, which keeps its
// grace and then stops working; the new one works.
func TestAttackIssuanceReonboardingSupersedes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := &testClock{}
	f := newFleet(t, sigalg.ECDSAP256)
	p := startIssuance(t, f, onboarding.IssuancePolicy{}, clock) // the defaults: a 10-minute grace
	op := issuanceOpKey(t, f.devices[0])
	first := issuanceOnboard(t, p, f, 0, op)
	second := issuanceOnboard(t, p, f, 0, op)
	asFirst := deviceClient(p.URL(), tlsClient(p, first))
	clock.advance(onboarding.DefaultSupersededGrace - 10*time.Second)
	if _, err := asFirst.Credentials(ctx); err != nil {
		t.Fatalf("the first certificate within its grace: %v", err)
	}
	clock.advance(20 * time.Second)
	if _, err := asFirst.Credentials(ctx); !isProblem(err, "certificate-superseded") {
		t.Fatalf("the first certificate after its grace: %v, want certificate-superseded", err)
	}
	if _, err := deviceClient(p.URL(), tlsClient(p, second)).Credentials(ctx); err != nil {
		t.Fatalf("the second certificate: %v", err)
	}
	certs := issuanceCerts(t, p, f.ids[0])
	if len(certs) != 2 || certs[0].SupersededAt != nil || certs[1].SupersededAt == nil {
		t.Fatalf("admin view: %+v, want the second current and the first superseded", certs)
	}
}

// TestAttackIssuanceRenewalReplay: under a required binding, a renewal's
// request is good on the TLS connection it was made for only; one made
// beforehand, or captured and sent on another connection, is refused.
func TestAttackIssuanceRenewalReplay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFleet(t, sigalg.ECDSAP256)
	p := startIssuance(t, f, onboarding.IssuancePolicy{}, nil)
	op := issuanceOpKey(t, f.devices[0])
	cert := issuanceOnboard(t, p, f, 0, op)
	// A request bound to one connection's exporter value...
	conn, err := tls.Dial("tcp", strings.TrimPrefix(p.URL(), "https://"), tlsClient(p, cert).Transport.(*http.Transport).TLSClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	state := conn.ConnectionState()
	ekm, err := state.ExportKeyingMaterial(onboarding.ChannelBindingLabel, nil, onboarding.ChannelBindingSize)
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	captured, _ := pki.CreateCSRWith(op, pki.CSROptions{CommonName: f.ids[0].String(), ChallengePassword: onboarding.RenewBinding(ekm)})
	unbound, _ := pki.CreateCSR(op, f.ids[0].String())
	mtls := deviceClient(p.URL(), tlsClient(p, cert))
	for name, csr := range map[string][]byte{"captured on another connection": captured, "unbound": unbound} {
		if _, err := mtls.Renew(ctx, csr); !isProblem(err, "bad-csr") {
			t.Errorf("renewal with a request %s: %v, want bad-csr", name, err)
		}
	}
	if _, err := mtls.RenewWithKey(ctx, f.ids[0], op); err != nil {
		t.Fatalf("a renewal bound to its own connection: %v", err)
	}
}
