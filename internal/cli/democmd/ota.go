package democmd

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/hallmark-iot/hallmark/internal/app"
	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/connector/mosquitto"
	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/firmwarerepo"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/onboarding/onboardpki"
	"github.com/hallmark-iot/hallmark/internal/ota"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// demoOTAClasses are the classes whose ECDSA P-256 device the demo moves
// to ML-DSA-65 over the air, in the order the table shows them. An
// inject chip without a programming channel (inject-clear) is left out:
// its new key would have to cross the network in the clear.
var demoOTAClasses = []string{"puf", "keygen", "inject"}

// demoOTAHSMClasses are demoOTAClasses with the platform's keys in the
// demo's SoftHSM2 token (demo --hsm). An inject chip's new key is made
// by the platform's key store and sealed to the chip's transport key;
// SoftHSM2 2.6 offers no ML-DSA mechanism and computes no HPKE seal, so
// that key cannot be made in the token (docs/keystore.md).
var demoOTAHSMClasses = []string{"puf", "keygen"}

// demoOTATarget is the suite the migration campaign moves devices to.
const demoOTATarget = sigalg.MLDSA65

// demoOTARounds bounds the agents' polls: two waves, each done in one
// step of its devices' agents, and a round to see nothing is left.
const demoOTARounds = 4

// demoOTADevice is a device the over-the-air part migrates.
type demoOTADevice struct {
	demoConnected
	dev   *device.Device
	agent *ota.Agent
	// before is the enrolment suite before the migration.
	before sigalg.ID
}

// demoOTA runs the over-the-air part, with no factory involved: the
// vendor's two roots become the product's firmware policy; a migration
// campaign rolls out a hybrid-signed image that retires the classical
// root slot and moves each chosen device's enrolment key to ML-DSA-65;
// the devices' own update agents poll, download, install, boot, prove
// continuity and take their new credentials over mutual TLS; then the
// operator retires the slot in the policy too, and a classical-only
// image is refused by the repository and by the ROM.
func demoOTA(ctx context.Context, s *cmdline.Streams, p *app.Platform, admin *httpapi.Client, roots *x509.CertPool,
	batch *demoBatch, cloud *demoCloud, onboarded []demoConnected, hw *demoHardware) error {
	classes := demoOTAClasses
	if hw != nil {
		classes = demoOTAHSMClasses
	}
	devices, err := demoOTAPick(p, roots, onboarded, classes)
	if err != nil {
		return err
	}
	ec, pq := batch.vendor[0], batch.vendor[1]
	rootIDs := make([]string, 0, len(batch.vendor))
	for _, k := range batch.vendor {
		id, err := identity.FromPublicKey(k.Public())
		if err != nil {
			return err
		}
		rootIDs = append(rootIDs, id.String())
	}
	if _, err := admin.UpdateProduct(ctx, "demo-sensor", httpapi.ProductUpdateRequest{FirmwareRoots: &rootIDs}); err != nil {
		return fmt.Errorf("firmware policy: %w", err)
	}
	image, err := demoImage(firmware.Version{Major: 2}, 2, firmware.SlotMask(1), "demo sensor 2.0.0: post-quantum identity", ec, pq)
	if err != nil {
		return err
	}
	rec, err := admin.UploadFirmware(ctx, "demo-sensor", bytes.NewReader(image))
	if err != nil {
		return fmt.Errorf("upload firmware: %w", err)
	}
	var ids []string
	for _, d := range devices {
		ids = append(ids, d.id.String())
	}
	c, err := admin.CreateCampaign(ctx, httpapi.CampaignRequest{Product: "demo-sensor", Image: rec.Digest, Devices: ids,
		Waves: "1,100%", MigrateTo: string(demoOTATarget)})
	if err != nil {
		return fmt.Errorf("create campaign: %w", err)
	}
	fmt.Fprintf(s.Out, "\nOver the air, no factory involved: firmware %s (%d bytes, signed by the ECDSA P-256 root in OTP slot 0 and the ML-DSA-65 root in slot 1,\n"+
		"retiring slot 0) uploaded; migration campaign %s to %s, waves %v; each device's update agent polls over mutual TLS:\n\n",
		rec.Version, rec.Size, c.ID, demoOTATarget, waveSizes(c))

	if err := demoOTARun(ctx, devices); err != nil {
		return err
	}
	done, err := admin.GetCampaign(ctx, c.ID)
	if err != nil {
		return err
	}
	if done.State != "completed" || done.Counts["migrated"] != len(devices) {
		return fmt.Errorf("campaign %s: %s, %v; want completed with %d migrated", c.ID, done.State, done.Counts, len(devices))
	}

	// The operator records the retirement: from now on the repository
	// takes only images signed under the remaining root, as the ROMs do.
	retired := []int{0}
	if _, err := admin.UpdateProduct(ctx, "demo-sensor", httpapi.ProductUpdateRequest{FirmwareRetiredSlots: &retired}); err != nil {
		return fmt.Errorf("retire slot 0: %w", err)
	}
	classical, err := demoImage(firmware.Version{Major: 2, Minor: 1}, 3, 0, "demo sensor 2.1.0, classical signature only", ec)
	if err != nil {
		return err
	}
	var problem *httpapi.Problem
	if _, err := admin.UploadFirmware(ctx, "demo-sensor", bytes.NewReader(classical)); !errors.As(err, &problem) || problem.Code != firmwarerepo.CodeRetiredRoot {
		return fmt.Errorf("upload of a classical-only image after the retirement: %v, want %s", err, firmwarerepo.CodeRetiredRoot)
	}
	romSays, err := demoROMRefuses(devices[0].path, classical)
	if err != nil {
		return err
	}

	tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
	header := "DEVICE\tCLASS\tOLD IDENTITY\tNEW IDENTITY\tENROLMENT\tFIRMWARE\tROOT SLOTS LIVE\tOLD CERTIFICATE"
	if cloud != nil {
		header += "\tCLOUD (NEW IDENTITY)"
	}
	fmt.Fprintln(tw, header)
	for _, d := range devices {
		row, err := demoOTARow(ctx, p, roots, d, cloud, admin)
		if err != nil {
			return fmt.Errorf("device %d: %w", d.num, err)
		}
		fmt.Fprintln(tw, row)
	}
	tw.Flush()
	fmt.Fprintf(s.Out, "\nCampaign %s %s: %d of %d devices migrated. Each proved to a fresh challenge that its old and new keys are one device;\n"+
		"the platform recorded the lineage, revoked the old certificate (superseded) and issued one for the new identity, whose TLS key stays ECDSA P-256.\n",
		done.ID, done.State, done.Counts["migrated"], done.DeviceCount)
	fmt.Fprintf(s.Out, "Slot 0 retired in the product's policy: the repository refused a classical-only image (%s), and so did the ROM of device %d (%s).\n",
		firmwarerepo.CodeRetiredRoot, devices[0].num, romSays)
	if !slices.Contains(classes, "inject") {
		fmt.Fprintf(s.Out, "inject: not migrated over the air here: its new %s key would be made in the platform's token and sealed to the chip,\n"+
			"and SoftHSM2 2.6 has no ML-DSA mechanism and computes no HPKE seal (docs/keystore.md).\n", demoOTATarget)
	}
	_, err = fmt.Fprintln(s.Out, "inject-clear: not migrated over the air: the chip has no transport key, so its new key would cross the network in the clear.")
	return err
}

// demoOTAPick loads the ECDSA P-256 device of each of classes and gives
// it its update agent.
func demoOTAPick(p *app.Platform, roots *x509.CertPool, onboarded []demoConnected, classes []string) ([]*demoOTADevice, error) {
	var out []*demoOTADevice
	for _, class := range classes {
		for _, c := range onboarded {
			if c.class != class || c.alg != sigalg.ECDSAP256 {
				continue
			}
			dev, err := device.Load(c.path, nil)
			if err != nil {
				return nil, err
			}
			if err := dev.Boot(); err != nil {
				return nil, fmt.Errorf("device %d: %w", c.num, err)
			}
			agent, err := demoAgent(p, roots, dev, c.path)
			if err != nil {
				return nil, fmt.Errorf("device %d: %w", c.num, err)
			}
			out = append(out, &demoOTADevice{demoConnected: c, dev: dev, agent: agent, before: dev.Algorithm()})
		}
	}
	if len(out) == 0 {
		return nil, errors.New("over the air: no ECDSA P-256 device to migrate")
	}
	return out, nil
}

// demoAgent is a device's update agent, over HTTPS with the device's
// certificate, and after its migration with the new one.
func demoAgent(p *app.Platform, roots *x509.CertPool, dev *device.Device, path string) (*ota.Agent, error) {
	transport := func(d *device.Device) (*httpapi.OTATransport, error) {
		cert, err := heldCertificate(d)
		if err != nil {
			return nil, err
		}
		return httpapi.NewOTATransport(p.URL(), cmdline.PlatformHTTPClient(roots, &cert))
	}
	tr, err := transport(dev)
	if err != nil {
		return nil, err
	}
	// Onboarding recovers a migration the platform committed but whose
	// answer was lost; it needs no client certificate.
	onb, err := httpapi.NewOnboardingClient(p.URL(), cmdline.PlatformHTTPClient(roots, nil), onboardpki.CSRs{})
	if err != nil {
		return nil, err
	}
	return &ota.Agent{Device: dev, StatePath: path, Transport: tr, Migrator: tr, CSRs: onboardpki.CSRs{}, Onboarding: onb,
		Reconnect: func(d *device.Device) (ota.Transport, error) { return transport(d) }}, nil
}

// heldCertificate is the TLS certificate of the credentials d holds.
func heldCertificate(d *device.Device) (tls.Certificate, error) {
	held := d.Credentials()
	if held == nil {
		return tls.Certificate{}, errors.New("the device holds no credentials")
	}
	key, err := d.OperationalKey(held.OperationalAlg)
	if err != nil {
		return tls.Certificate{}, err
	}
	cert := tls.Certificate{PrivateKey: key}
	for _, c := range held.CertificateChain {
		block, _ := pem.Decode([]byte(c))
		if block == nil || block.Type != "CERTIFICATE" {
			return tls.Certificate{}, errors.New("a chain element is not a PEM certificate")
		}
		cert.Certificate = append(cert.Certificate, block.Bytes)
	}
	return cert, nil
}

// demoOTARun steps every agent, round after round, until each device has
// migrated; any other outcome is an error.
func demoOTARun(ctx context.Context, devices []*demoOTADevice) error {
	left := len(devices)
	finished := make([]bool, len(devices))
	for round := 0; round < demoOTARounds && left > 0; round++ {
		for i, d := range devices {
			if finished[i] {
				continue
			}
			res, err := d.agent.Step(ctx)
			if err != nil {
				return fmt.Errorf("device %d's update agent: %w", d.num, err)
			}
			if r := res.Outcome; r != nil {
				if r.State != ota.StateMigrated {
					return fmt.Errorf("device %d: %s [reason %s] %s", d.num, r.State, r.Reason, r.Detail)
				}
				finished[i] = true
				left--
			}
		}
	}
	if left > 0 {
		return fmt.Errorf("over the air: %d devices not migrated after %d rounds", left, demoOTARounds)
	}
	return nil
}

// demoOTARow is one migrated device's row: what it holds now, and what
// the platform (and the broker, with a cloud) make of its two identities.
func demoOTARow(ctx context.Context, p *app.Platform, roots *x509.CertPool, d *demoOTADevice, cloud *demoCloud, admin *httpapi.Client) (string, error) {
	newID, err := d.dev.Identity()
	if err != nil {
		return "", err
	}
	h, _, err := d.dev.Running()
	if err != nil {
		return "", err
	}
	// The old certificate is refused; the new one fetches its credentials.
	old, err := httpapi.NewOnboardingClient(p.URL(), cmdline.PlatformHTTPClient(roots, &d.cert), onboardpki.CSRs{})
	if err != nil {
		return "", err
	}
	if _, err := old.Credentials(ctx); !errors.Is(err, onboarding.ErrMigrated) {
		return "", fmt.Errorf("the old certificate: %v, want refused as migrated", err)
	}
	cert, err := heldCertificate(d.dev)
	if err != nil {
		return "", err
	}
	cur, err := httpapi.NewOnboardingClient(p.URL(), cmdline.PlatformHTTPClient(roots, &cert), onboardpki.CSRs{})
	if err != nil {
		return "", err
	}
	if creds, err := cur.Credentials(ctx); err != nil || creds.Identity != newID {
		return "", fmt.Errorf("the new certificate: %v", err)
	}
	row := fmt.Sprintf("%d\t%s\t%s\t%s\t%s → %s\t%s\t%s\trefused (device-migrated)", d.num, d.class, d.id.Short(), newID.Short(),
		d.before, d.dev.Algorithm(), h.Version, liveSlots(d.dev))
	if cloud != nil {
		state, err := waitRegistered(ctx, admin, newID)
		if err != nil {
			return "", err
		}
		topic := "devices/" + newID.String() + "/status"
		if err := mosquitto.Publish(ctx, cloud.broker.DeviceURL(), cert, cloud.roots, topic, []byte(`{"status":"migrated"}`)); err != nil {
			return "", fmt.Errorf("publish as the new identity: %w", err)
		}
		row += "\t" + state + ", published"
	}
	return row, nil
}

// liveSlots names the root-key slots the device's ROM still honours.
func liveSlots(d *device.Device) string {
	retired := d.RetiredRootSlots()
	names := []string{"ECDSA P-256", "ML-DSA-65"}
	var live []string
	for i, n := range names {
		if !retired.Has(i) {
			live = append(live, fmt.Sprintf("%d (%s)", i, n))
		}
	}
	return strings.Join(live, ", ")
}

// demoROMRefuses programs image into a bench copy of the device at path
// (its state file, loaded again) and returns the ROM's refusal reason.
func demoROMRefuses(path string, image []byte) (string, error) {
	bench, err := device.Load(path, nil)
	if err != nil {
		return "", err
	}
	// A locked bootloader (the station locks every chip) applies the
	// ROM's rules when programming, so the refusal may come there.
	if err = bench.Program(image); err == nil {
		err = bench.Boot()
	}
	if code := device.ReasonCode(err); code != "retired-root" {
		return "", fmt.Errorf("the ROM booting a classical-only image: %v, want refused (retired-root)", err)
	}
	return "retired-root", nil
}

// demoImage makes an application image signed by keys, in order.
func demoImage(v firmware.Version, counter uint32, retire firmware.SlotMask, payload string, keys ...crypto.Signer) ([]byte, error) {
	img, err := firmware.New(firmware.Metadata{Type: firmware.TypeApplication, Version: v, SecurityCounter: counter, RetireSlots: retire}, []byte(payload))
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if err := img.Sign(k); err != nil {
			return nil, err
		}
	}
	return img.MarshalBinary()
}

func waveSizes(c httpapi.Campaign) []int {
	var out []int
	for _, w := range c.Waves {
		out = append(out, w.Size)
	}
	return out
}
