package app

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/firmwarerepo"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/monitoring"
	"github.com/hallmark-iot/hallmark/internal/onboarding/onboardpki"
	"github.com/hallmark-iot/hallmark/internal/ota"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Over the air, end to end (docs/ota.md, "End to end"): the device's real
// update agent (ota.Agent over httpapi.OTATransport, mutual TLS with the
// certificate the platform issued) against the real platform: firmware
// repository, campaigns and migration. The devices are the simulator's,
// made by a hybrid firmware vendor (an ECDSA P-256 root in OTP slot 0, an
// ML-DSA-65 root in slot 1) and onboarded with ECDSA P-256 enrolment keys.

// otaEnv is a platform whose product "meter" trusts the vendor's two
// roots, and a fleet onboarded on it, each device with its agent.
type otaEnv struct {
	p      *Platform
	admin  *httpapi.Client
	ec, pq crypto.Signer
	devs   []*otaDevice
}

// otaDevice is one device in the field: its chip, its state file and the
// identity and certificate it was onboarded with.
type otaDevice struct {
	class device.Class
	dev   *device.Device
	state string
	id    identity.ID
	cert  *tls.Certificate
	agent *ota.Agent
}

func newOTAEnv(t *testing.T, classes ...device.Class) *otaEnv {
	t.Helper()
	ctx := context.Background()
	e := &otaEnv{p: start(t, newDataDir(t), sigalg.ECDSAP256), ec: firmwareKey(t, sigalg.ECDSAP256), pq: firmwareKey(t, sigalg.MLDSA65)}
	e.admin = adminClient(t, e.p)
	roots := [][32]byte{rootHash(t, e.ec), rootHash(t, e.pq)}

	// The factory: a hybrid-signed IEF, one chip per class, a manifest.
	ief := e.sign(t, firmware.Metadata{Type: firmware.TypeIEF}, device.IEFPayload(), e.ec, e.pq)
	stationKey := firmwareKey(t, sigalg.Ed25519)
	stationPEM, _ := sigalg.EncodePublicKeyPEM(stationKey.Public())
	var buf bytes.Buffer
	w, err := manifest.NewWriter(&buf, manifest.Header{Batch: "ota-1"}, stationKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for i, class := range classes {
		d, err := device.New(device.Config{Class: class, Algorithm: sigalg.ECDSAP256, RootKeyHashes: roots, EncryptedChannel: class == device.ClassInject})
		if err != nil {
			t.Fatal(err)
		}
		rec := manifest.Record{Algorithm: sigalg.ECDSAP256, RootOfTrust: manifest.RootOfTrust(class), Injection: manifest.NotInjected, Time: time.Now()}
		if class == device.ClassInject {
			injectSealed(t, d)
			rec.Injection = manifest.Encrypted
		}
		if err := d.Program(ief); err != nil {
			t.Fatal(err)
		}
		if err := d.Boot(); err != nil {
			t.Fatal(err)
		}
		rec.Nonce = make([]byte, 32)
		rand.Read(rec.Nonce)
		enr, err := d.Enrol(rec.Nonce)
		if err != nil {
			t.Fatal(err)
		}
		rec.Identity, rec.SPKI, rec.Proof = enr.Identity, enr.PublicKey, enr.Proof
		if err := w.Add(ctx, rec); err != nil {
			t.Fatal(err)
		}
		e.devs = append(e.devs, &otaDevice{class: class, dev: d, id: enr.Identity, state: dir + "/device-" + string(rune('a'+i)) + ".json"})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.CreateStation(ctx, httpapi.StationRequest{Name: "line", PublicKey: string(stationPEM)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.CreateProduct(ctx, httpapi.ProductRequest{ID: "meter", Name: "Meter", CertValidity: "720h",
		CloudEndpoint: "mqtts://broker.test:8883", FirmwareRoots: []string{rootHex(t, e.ec), rootHex(t, e.pq)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.ImportManifest(ctx, "meter", bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}

	// The field: the application 2.0.1, onboarding, the agent.
	app1 := e.image(t, 1, "meter application", 0, e.ec, e.pq)
	for _, od := range e.devs {
		if err := od.dev.Program(app1); err != nil {
			t.Fatal(err)
		}
		if err := od.dev.Boot(); err != nil {
			t.Fatal(err)
		}
		creds, cert, err := onboard(t, e.p, od.dev, od.id)
		if err != nil {
			t.Fatalf("onboard the %s device: %v", od.class, err)
		}
		od.cert = cert
		od.dev.SetCredentials(device.Credentials{CertificateChain: creds.CertificateChain, TrustBundle: creds.TrustBundle,
			CloudEndpoint: creds.CloudEndpoint, OperationalAlg: sigalg.ECDSAP256})
		if err := od.dev.Save(od.state); err != nil {
			t.Fatal(err)
		}
		od.agent = e.agent(t, od.dev, od.state, nil)
	}
	return e
}

// injectSealed has the station's key store make an inject chip's key and
// seal it to the chip's transport key.
func injectSealed(t *testing.T, d *device.Device) {
	t.Helper()
	key := firmwareKey(t, sigalg.ECDSAP256)
	der, err := sigalg.MarshalPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	transport, err := d.TransportKey()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := transport.Wrap(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.InjectKey(sealed, true); err != nil {
		t.Fatal(err)
	}
}

func rootHash(t *testing.T, k crypto.Signer) [32]byte {
	t.Helper()
	spki, err := sigalg.MarshalPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(spki)
}

// sign makes an image of payload signed by keys, in order.
func (e *otaEnv) sign(t *testing.T, md firmware.Metadata, payload []byte, keys ...crypto.Signer) []byte {
	t.Helper()
	img, err := firmware.New(md, payload)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if err := img.Sign(k); err != nil {
			t.Fatal(err)
		}
	}
	data, err := img.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// image makes the application 2.0.counter with security counter counter.
func (e *otaEnv) image(t *testing.T, counter uint32, payload string, retire firmware.SlotMask, keys ...crypto.Signer) []byte {
	t.Helper()
	return e.sign(t, firmware.Metadata{Type: firmware.TypeApplication, Version: firmware.Version{Major: 2, Patch: uint16(counter)},
		SecurityCounter: counter, RetireSlots: retire}, []byte(payload), keys...)
}

// agent is the device's update agent over HTTPS with mutual TLS; wrap,
// when set, wraps the HTTP transport of every client it makes.
func (e *otaEnv) agent(t *testing.T, d *device.Device, state string, wrap func(http.RoundTripper) http.RoundTripper) *ota.Agent {
	t.Helper()
	transport := func(d *device.Device) (*httpapi.OTATransport, error) {
		cert, err := heldCertificate(d)
		if err != nil {
			return nil, err
		}
		hc := tlsClient(e.p, cert)
		if wrap != nil {
			hc.Transport = wrap(hc.Transport)
		}
		return httpapi.NewOTATransport(e.p.URL(), hc)
	}
	tr, err := transport(d)
	if err != nil {
		t.Fatal(err)
	}
	return &ota.Agent{Device: d, StatePath: state, Transport: tr, Migrator: tr, CSRs: onboardpki.CSRs{}, Out: t.Output(),
		Onboarding: deviceClient(e.p.URL(), tlsClient(e.p, nil)),
		Reconnect:  func(d *device.Device) (ota.Transport, error) { return transport(d) }}
}

// heldCertificate is the TLS certificate of the credentials d holds.
func heldCertificate(d *device.Device) (*tls.Certificate, error) {
	held := d.Credentials()
	key, err := d.OperationalKey(held.OperationalAlg)
	if err != nil {
		return nil, err
	}
	cert := &tls.Certificate{PrivateKey: key}
	for _, c := range held.CertificateChain {
		block, _ := pem.Decode([]byte(c))
		if block == nil {
			return nil, errors.New("a chain element is not PEM")
		}
		cert.Certificate = append(cert.Certificate, block.Bytes)
	}
	return cert, nil
}

// upload puts data in the repository for "meter".
func (e *otaEnv) upload(t *testing.T, data []byte) httpapi.FirmwareImage {
	t.Helper()
	img, err := e.admin.UploadFirmware(context.Background(), "meter", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func (e *otaEnv) campaign(t *testing.T, req httpapi.CampaignRequest) httpapi.Campaign {
	t.Helper()
	c, err := e.admin.CreateCampaign(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *otaEnv) progress(t *testing.T, id string) httpapi.Campaign {
	t.Helper()
	c, err := e.admin.GetCampaign(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// run steps every device's agent, round after round, until each has an
// outcome or a round changes nothing (its wave never opens); it returns
// the outcomes by device.
func (e *otaEnv) run(t *testing.T) map[int]*ota.Report {
	t.Helper()
	out := map[int]*ota.Report{}
	for round := 0; round < 2*len(e.devs)+2; round++ {
		progressed := false
		for i, od := range e.devs {
			if out[i] != nil {
				continue
			}
			res, err := od.agent.Step(context.Background())
			if err != nil {
				t.Fatalf("the %s device's agent: %v", od.class, err)
			}
			if res.Outcome != nil {
				out[i], progressed = res.Outcome, true
			}
		}
		if !progressed && round > 0 {
			break
		}
	}
	return out
}

func (e *otaEnv) running(t *testing.T, od *otaDevice) string {
	t.Helper()
	h, _, err := od.dev.Running()
	if err != nil {
		t.Fatal(err)
	}
	return h.Version.String()
}

// TestOTAEndToEnd: (a) a hybrid-signed update in two waves completes;
// (b) a migration campaign's image retires the classical root slot and
// every device moves its enrolment key to ML-DSA-65, its old identity
// refused from then on; (c) once the product's policy retires the slot
// too, an image signed only under the classical root is refused by the
// repository and by the ROM.
func TestOTAEndToEnd(t *testing.T) {
	t.Parallel()
	e := newOTAEnv(t, device.ClassKeygen, device.ClassPUF, device.ClassInject)
	ctx := context.Background()
	n := len(e.devs)

	// (a) An update in two waves: one device, then the rest.
	v2 := e.upload(t, e.image(t, 2, "meter application, release 2", 0, e.ec, e.pq))
	c := e.campaign(t, httpapi.CampaignRequest{Product: "meter", Image: v2.Digest, Waves: "1,100%"})
	if c.DeviceCount != n || len(c.Waves) != 2 || c.Waves[0].Size != 1 || c.Waves[1].Size != n-1 {
		t.Fatalf("update campaign %+v", c)
	}
	for i, r := range e.run(t) {
		if r.State != ota.StateBooted || r.FirmwareVersion != "2.0.2" {
			t.Fatalf("the %s device's outcome: %+v", e.devs[i].class, r)
		}
	}
	for _, od := range e.devs {
		if v := e.running(t, od); v != "2.0.2" || od.dev.SecurityCounter() != 2 {
			t.Fatalf("the %s device runs %s, counter %d", od.class, v, od.dev.SecurityCounter())
		}
		if _, err := os.Stat(ota.JournalPath(od.state)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the %s device kept its journal: %v", od.class, err)
		}
	}
	p := e.progress(t, c.ID)
	if p.State != "completed" || p.Counts["booted"] != n || len(p.Counts) != 1 {
		t.Fatalf("update campaign after the run: %+v", p)
	}
	for i, w := range p.Waves {
		if w.Finished != w.Size || w.Failed != 0 || w.Counts["booted"] != w.Size {
			t.Fatalf("wave %d: %+v", i+1, w)
		}
	}

	// (b) The migration campaign: an image that retires slot 0 and
	// carries migrate-to ml-dsa-65.
	v3 := e.upload(t, e.image(t, 3, "meter application, release 3: post-quantum", firmware.SlotMask(1), e.ec, e.pq))
	mc := e.campaign(t, httpapi.CampaignRequest{Product: "meter", Image: v3.Digest, MigrateTo: "ml-dsa-65"})
	if mc.DeviceCount != n || mc.MigrateTo != "ml-dsa-65" {
		t.Fatalf("migration campaign %+v", mc)
	}
	outcomes := e.run(t)
	for i, od := range e.devs {
		r := outcomes[i]
		if r == nil || r.State != ota.StateMigrated || r.FirmwareVersion != "2.0.3" {
			t.Fatalf("the %s device's outcome: %+v", od.class, r)
		}
		newID, err := od.dev.Identity()
		if err != nil {
			t.Fatal(err)
		}
		if newID == od.id || od.dev.Algorithm() != sigalg.MLDSA65 || e.running(t, od) != "2.0.3" || !od.dev.RetiredRootSlots().Has(0) {
			t.Fatalf("the %s device: identity %s (was %s), %s, firmware %s, retired slots %v", od.class, newID.Short(), od.id.Short(),
				od.dev.Algorithm(), e.running(t, od), od.dev.RetiredRootSlots())
		}
		// The new identity is SHA-256 of an ML-DSA-65 SPKI, the key the
		// platform recorded.
		stored, err := e.p.Store.GetDevice(ctx, newID)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := sigalg.ParsePublicKey(stored.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		if suite, err := sigalg.SuiteOf(pub); err != nil || suite.ID() != sigalg.MLDSA65 || sha256.Sum256(stored.PublicKey) != [32]byte(newID) {
			t.Fatalf("the %s device's new key: %v, %v", od.class, suite, err)
		}
		for id, want := range map[identity.ID][2]*identity.ID{od.id: {nil, &newID}, newID: {&od.id, nil}} {
			l, err := e.p.Store.GetLineage(ctx, id)
			if err != nil || !sameLink(l.Predecessor, want[0]) || !sameLink(l.Successor, want[1]) {
				t.Fatalf("lineage of %s: %+v, %v", id.Short(), l, err)
			}
		}
		old, err := e.admin.GetDevice(ctx, od.id)
		if err != nil || old.State != "migrated" || len(old.Certificates) == 0 {
			t.Fatalf("the old identity: %+v, %v", old, err)
		}
		for _, cert := range old.Certificates {
			if cert.RevocationReason != "superseded" {
				t.Fatalf("the old certificate is revoked %q, want superseded", cert.RevocationReason)
			}
		}
		// The old certificate is refused; the new one gets credentials
		// and reports status.
		_, err = deviceClient(e.p.URL(), tlsClient(e.p, od.cert)).Credentials(ctx)
		wantProblem(t, "credentials with the old certificate", err, "device-migrated")
		newCert, err := heldCertificate(od.dev)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := deviceClient(e.p.URL(), tlsClient(e.p, newCert)).Credentials(ctx); err != nil || got.Identity != newID {
			t.Fatalf("credentials with the new certificate: %+v, %v", got, err)
		}
		tr := &httpapi.OnboardingTransport{BaseURL: e.p.URL(), HTTP: tlsClient(e.p, newCert)}
		if _, err := tr.ReportStatus(ctx, monitoring.StatusReport{FirmwareVersion: "2.0.3", SecurityCounter: od.dev.SecurityCounter(), BootResult: "ok",
			EnrolmentAlgorithm: sigalg.MLDSA65, OperationalAlgorithm: sigalg.ECDSAP256, UptimeSeconds: 5}); err != nil {
			t.Fatalf("status report with the new certificate: %v", err)
		}
		if st, err := e.p.Store.GetStatus(ctx, newID); err != nil || st.EnrolmentAlgorithm != sigalg.MLDSA65 {
			t.Fatalf("the new identity's status: %+v, %v", st, err)
		}
	}
	mp := e.progress(t, mc.ID)
	if mp.State != "completed" || mp.Counts["migrated"] != n || len(mp.Counts) != 1 {
		t.Fatalf("migration campaign after the run: %+v", mp)
	}

	// (c) The operator records slot 0 retired: a classical-only image is
	// refused at upload, and by the ROM if programmed anyway; one signed
	// under the remaining root is taken by both.
	retired := []int{0}
	if prod, err := e.admin.UpdateProduct(ctx, "meter", httpapi.ProductUpdateRequest{FirmwareRetiredSlots: &retired}); err != nil || len(prod.FirmwareRetiredSlots) != 1 {
		t.Fatalf("retire slot 0: %+v, %v", prod, err)
	}
	classical := e.image(t, 4, "meter application, classical only", 0, e.ec)
	if _, err := e.admin.UploadFirmware(ctx, "meter", bytes.NewReader(classical)); !isProblem(err, firmwarerepo.CodeRetiredRoot) {
		t.Fatalf("upload of a classical-only image: %v, want %s", err, firmwarerepo.CodeRetiredRoot)
	}
	pqOnly := e.image(t, 4, "meter application, post-quantum only", 0, e.pq)
	e.upload(t, pqOnly)
	od := e.devs[0]
	if err := od.dev.Program(classical); err != nil {
		t.Fatal(err)
	}
	if err := od.dev.Boot(); device.ReasonCode(err) != "retired-root" {
		t.Fatalf("the ROM booting a classical-only image: %v (reason %q), want retired-root", err, device.ReasonCode(err))
	}
	if err := od.dev.Program(pqOnly); err != nil {
		t.Fatal(err)
	}
	if err := od.dev.Boot(); err != nil {
		t.Fatalf("the ROM booting an image under the remaining root: %v", err)
	}
}

func sameLink(got *store.LineageLink, want *identity.ID) bool {
	if got == nil || want == nil {
		return got == nil && want == nil
	}
	return got.Predecessor == *want || got.Successor == *want
}

// TestOTAEndToEndHalt: an image that does not boot rolls back on the
// first wave's devices, which report no-boot; the campaign halts and its
// second wave is never offered.
func TestOTAEndToEndHalt(t *testing.T) {
	t.Parallel()
	e := newOTAEnv(t, device.ClassKeygen, device.ClassPUF, device.ClassKeygen)
	bad := e.upload(t, e.image(t, 2, device.NoBootMarker+"release 2, broken", 0, e.ec, e.pq))
	c := e.campaign(t, httpapi.CampaignRequest{Product: "meter", Image: bad.Digest, Waves: "2,100%"})
	outcomes := e.run(t)
	if len(outcomes) != 2 {
		t.Fatalf("%d devices finished, want the first wave's 2: %+v", len(outcomes), outcomes)
	}
	for i, r := range outcomes {
		od := e.devs[i]
		if r.State != ota.StateRolledBack || r.Reason != device.ReasonNoBoot || r.FirmwareVersion != "2.0.1" {
			t.Fatalf("the %s device's outcome: %+v", od.class, r)
		}
		if v := e.running(t, od); v != "2.0.1" || od.dev.SecurityCounter() != 1 || od.dev.LastUpdate().Outcome != device.UpdateRolledBack {
			t.Fatalf("the %s device runs %s, counter %d, last update %+v", od.class, v, od.dev.SecurityCounter(), od.dev.LastUpdate())
		}
	}
	p := e.progress(t, c.ID)
	if p.State != "halted" || p.Counts["rolled-back"] != 2 || p.Counts["pending"] != 1 || p.Waves[1].Open {
		t.Fatalf("campaign after the first wave: %+v", p)
	}
	for i, od := range e.devs {
		if outcomes[i] != nil {
			continue
		}
		res, err := od.agent.Step(context.Background())
		if err != nil || res.Assignment != nil {
			t.Fatalf("the second wave's %s device after the halt: %+v, %v", od.class, res, err)
		}
	}
	page, err := e.admin.ListCampaignDevices(context.Background(), c.ID, "rolled-back", "", 10)
	if err != nil || len(page.Devices) != 2 || page.Devices[0].Reason != device.ReasonNoBoot {
		t.Fatalf("rolled-back devices: %+v, %v", page, err)
	}
}

// TestOTAEndToEndPowerLoss: the device's connection is cut mid-download
// by a TCP proxy between the agent and the platform, and the device loses
// power; after the restart its agent resumes with a range request and
// the update boots.
func TestOTAEndToEndPowerLoss(t *testing.T) {
	t.Parallel()
	e := newOTAEnv(t, device.ClassKeygen)
	ctx := context.Background()
	payload := make([]byte, 600<<10)
	rand.Read(payload)
	img := e.image(t, 2, string(payload), 0, e.ec, e.pq)
	rec := e.upload(t, img)
	c := e.campaign(t, httpapi.CampaignRequest{Product: "meter", Image: rec.Digest})

	proxy := newCutProxy(t, e.p.listener.Addr().String())
	od := e.devs[0]
	seen := &rangeLog{}
	agentVia := func(d *device.Device) *ota.Agent {
		a := e.agent(t, d, od.state, func(rt http.RoundTripper) http.RoundTripper {
			tr := rt.(*http.Transport)
			tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, proxy.addr)
			}
			return &rangeRecorder{next: tr, log: seen, proxy: proxy}
		})
		return a
	}
	proxy.cutNextDownload(200 << 10)
	_, err := agentVia(od.dev).Step(ctx)
	if err == nil || !strings.Contains(err.Error(), "download interrupted") {
		t.Fatalf("the cut download: %v", err)
	}
	if got := e.progress(t, c.ID).Counts["downloading"]; got != 1 {
		t.Fatalf("campaign while the device is cut off: %+v", e.progress(t, c.ID).Counts)
	}
	fi, err := os.Stat(ota.PartialPath(od.state))
	if err != nil || fi.Size() == 0 || fi.Size() >= int64(len(img)) {
		t.Fatalf("the partial download after the cut: %v, %v", fi, err)
	}

	// Power loss: the chip comes back from its state file, boots, and a
	// new agent reads the journal.
	d, err := device.Load(od.state, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Boot(); err != nil {
		t.Fatal(err)
	}
	res, err := agentVia(d).Step(ctx)
	if err != nil || res.Outcome == nil || res.Outcome.State != ota.StateBooted {
		t.Fatalf("the step after the power loss: %+v, %v", res, err)
	}
	if h, _, _ := d.Running(); h.Version.String() != "2.0.2" {
		t.Fatalf("the device runs %s after the resumed update", h.Version)
	}
	reqs := seen.all()
	if len(reqs) != 2 || reqs[0].rangeHeader != "" || reqs[0].status != http.StatusOK || reqs[1].status != http.StatusPartialContent ||
		reqs[1].rangeHeader != "bytes="+strconv.FormatInt(fi.Size(), 10)+"-" {
		t.Fatalf("firmware requests %+v, want a whole one then a range from byte %d", reqs, fi.Size())
	}
	if reqs[0].received < fi.Size() || reqs[0].received >= int64(len(img)) {
		t.Fatalf("the first response delivered %d bytes of %d, the partial file holds %d", reqs[0].received, len(img), fi.Size())
	}
	if p := e.progress(t, c.ID); p.State != "completed" || p.Counts["booted"] != 1 {
		t.Fatalf("campaign after the resumed update: %+v", p)
	}
}

// cutProxy is a TCP proxy that, once armed, closes the connection after
// passing n more bytes from the platform to the device: a connection
// lost, or power cut, mid-response.
type cutProxy struct {
	addr           string
	target         string
	pending, armed atomic.Int64
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{addr: l.Addr().String(), target: target}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	// The platform keeps idle connections open: close them rather than
	// wait for its idle timeout.
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); p.serve(c) }()
		}
	}()
	return p
}

// cutNextDownload makes the proxy cut the next firmware download after n
// bytes from the platform; the device's rangeRecorder arms it when that
// request goes out, on a connection whose earlier answers were read.
func (p *cutProxy) cutNextDownload(n int64) { p.pending.Store(n) }

// arm makes the next bytes from the platform, the pending count of them,
// pass, then the connection close.
func (p *cutProxy) arm() {
	if n := p.pending.Swap(0); n > 0 {
		p.armed.Store(n)
	}
}

func (p *cutProxy) serve(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	go func() { io.Copy(server, client); server.Close() }()
	buf := make([]byte, 16<<10)
	left := int64(-1)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			if left < 0 {
				if a := p.armed.Swap(0); a > 0 {
					left = a
				}
			}
			if left >= 0 && int64(n) >= left {
				client.Write(buf[:left])
				return // the cut: both sides closed
			}
			if left >= 0 {
				left -= int64(n)
			}
			if _, err := client.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// rangeLog keeps what the device asked for and got on the firmware route.
type rangeLog struct {
	mu   sync.Mutex
	reqs []*firmwareRequest
}

type firmwareRequest struct {
	rangeHeader string
	status      int
	received    int64
}

func (l *rangeLog) all() []firmwareRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []firmwareRequest
	for _, r := range l.reqs {
		out = append(out, *r)
	}
	return out
}

// rangeRecorder records the firmware requests and, when the proxy is to
// cut the next download, arms it just before the request goes out.
type rangeRecorder struct {
	next  http.RoundTripper
	log   *rangeLog
	proxy *cutProxy
}

func (r *rangeRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.HasPrefix(req.URL.Path, ota.PathFirmware) {
		return r.next.RoundTrip(req)
	}
	r.proxy.arm()
	resp, err := r.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	rec := &firmwareRequest{rangeHeader: req.Header.Get("Range"), status: resp.StatusCode}
	r.log.mu.Lock()
	r.log.reqs = append(r.log.reqs, rec)
	r.log.mu.Unlock()
	resp.Body = &countingBody{ReadCloser: resp.Body, log: r.log, n: &rec.received}
	return resp, nil
}

type countingBody struct {
	io.ReadCloser
	log *rangeLog
	n   *int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.log.mu.Lock()
	*b.n += int64(n)
	b.log.mu.Unlock()
	return n, err
}
