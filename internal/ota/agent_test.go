package ota_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/ota"
	"github.com/hallmark-iot/hallmark/internal/ota/otatest"
	"github.com/hallmark-iot/hallmark/internal/sealing"
)

type bench struct {
	vendor *otatest.Vendor
	plat   *otatest.Platform
	state  string
	out    *bytes.Buffer
}

func newBench(t *testing.T, roots int, classKey *sealing.PrivateKey) *bench {
	t.Helper()
	b := &bench{vendor: otatest.NewVendor(t, roots), plat: otatest.New(), state: filepath.Join(t.TempDir(), "chip.json"), out: &bytes.Buffer{}}
	b.vendor.Device(t, device.ClassKeygen, classKey, b.state)
	return b
}

// agent loads the device from its state file, as a process starting
// (and so a chip powering up) does.
func (b *bench) agent(t *testing.T) *ota.Agent {
	t.Helper()
	dev, err := device.Load(b.state, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &ota.Agent{Device: dev, StatePath: b.state, Transport: b.plat, Out: b.out}
}

func (b *bench) step(t *testing.T) ota.Result {
	t.Helper()
	res, err := b.agent(t).Step(context.Background())
	if err != nil {
		t.Fatalf("step: %v\n%s", err, b.out)
	}
	return res
}

// running boots the saved device and returns the version it runs.
func (b *bench) running(t *testing.T) (string, string) {
	t.Helper()
	dev, err := device.Load(b.state, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Boot(); err != nil {
		t.Fatal(err)
	}
	h, slot, _ := dev.Running()
	return h.Version.String(), slot
}

func (b *bench) noLeftovers(t *testing.T) {
	t.Helper()
	for _, p := range []string{ota.JournalPath(b.state), ota.PartialPath(b.state)} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind (%v)", p, err)
		}
	}
}

func wantStates(t *testing.T, p *otatest.Platform, want ...ota.DeviceState) {
	t.Helper()
	if got := p.States(); !slices.Equal(got, want) {
		t.Fatalf("reports %v, want %v", got, want)
	}
}

func TestUpdateBoots(t *testing.T) {
	b := newBench(t, 1, nil)
	b.plat.SetRetryAfter(30 * time.Second)
	img := b.vendor.Image(t, otatest.ImageSpec{Counter: 2, Payload: "app two"})
	b.plat.Offer("cmp_1", img, otatest.Version(2), 2)
	res := b.step(t)
	if res.Outcome == nil || res.Outcome.State != ota.StateBooted || res.RetryAfter != 30*time.Second {
		t.Fatalf("result %+v", res)
	}
	wantStates(t, b.plat, ota.StateDownloading, ota.StateInstalled, ota.StateBooted)
	reps := b.plat.Reports()
	if reps[0].FirmwareVersion != "2.0.1" || reps[2].FirmwareVersion != "2.0.2" || reps[2].CampaignID != "cmp_1" {
		t.Fatalf("reports %+v", reps)
	}
	if v, slot := b.running(t); v != "2.0.2" || slot != "b" {
		t.Fatalf("running %s in slot %s", v, slot)
	}
	b.noLeftovers(t)
	for _, line := range []string{"assignment: campaign cmp_1", "downloading: from byte 0", "installed: 2.0.2", "booted: 2.0.2 confirmed in slot b; anti-rollback counter 2"} {
		if !strings.Contains(b.out.String(), line) {
			t.Errorf("output lacks %q:\n%s", line, b.out)
		}
	}
}

func TestNoAssignment(t *testing.T) {
	b := newBench(t, 1, nil)
	b.plat.SetRetryAfter(time.Minute)
	before, _ := os.ReadFile(b.state)
	res := b.step(t)
	if res.Assignment != nil || res.Outcome != nil || res.RetryAfter != time.Minute {
		t.Fatalf("result %+v", res)
	}
	wantStates(t, b.plat)
	b.noLeftovers(t)
	if after, _ := os.ReadFile(b.state); !bytes.Equal(before, after) {
		t.Fatal("a poll with no assignment changed the device state")
	}
}

// TestPowerLossMidDownload: the connection dies after 1,000 bytes; the
// next run, a new process over the saved state, asks for the rest only
// and installs identical bytes; "downloading" is reported once.
func TestPowerLossMidDownload(t *testing.T) {
	b := newBench(t, 1, nil)
	img := b.vendor.Image(t, otatest.ImageSpec{Counter: 2, Payload: strings.Repeat("big app ", 40000)})
	b.plat.Offer("cmp_1", img, otatest.Version(2), 2)
	b.plat.CutNextDownload(1000)
	if _, err := b.agent(t).Step(context.Background()); err == nil || !strings.Contains(err.Error(), "interrupted at byte 1000") {
		t.Fatalf("cut download: %v", err)
	}
	if part, _ := os.ReadFile(ota.PartialPath(b.state)); !bytes.Equal(part, img[:1000]) {
		t.Fatalf("partial file of %d bytes, want the first 1000 of the image", len(part))
	}
	b.step(t)
	if got := b.plat.Offsets(); !slices.Equal(got, []int64{0, 1000}) {
		t.Fatalf("download offsets %v, want [0 1000]", got)
	}
	wantStates(t, b.plat, ota.StateDownloading, ota.StateInstalled, ota.StateBooted)
	if v, _ := b.running(t); v != "2.0.2" {
		t.Fatalf("running %s", v)
	}
}

// killAt is an output that stops the process (panics) when the agent
// prints a line starting with prefix.
type killAt struct {
	prefix string
	buf    bytes.Buffer
}

func (k *killAt) Write(p []byte) (int, error) {
	if strings.HasPrefix(string(p), k.prefix) {
		panic("killed")
	}
	return k.buf.Write(p)
}

func killedStep(t *testing.T, a *ota.Agent) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Fatal("the agent was not killed")
		}
	}()
	a.Step(context.Background())
}

// TestKilledBetweenSteps kills the process at each step's line; a new
// process over the saved files finishes the update without downloading
// again or reporting a state twice.
func TestKilledBetweenSteps(t *testing.T) {
	for _, at := range []string{"downloaded:", "installed:", "booted:"} {
		t.Run(at, func(t *testing.T) {
			b := newBench(t, 1, nil)
			b.plat.Offer("cmp_1", b.vendor.Image(t, otatest.ImageSpec{Counter: 2, Payload: "app two"}), otatest.Version(2), 2)
			a := b.agent(t)
			a.Out = &killAt{prefix: at}
			killedStep(t, a)
			res := b.step(t)
			if res.Outcome == nil || res.Outcome.State != ota.StateBooted {
				t.Fatalf("after the restart: %+v\n%s", res, b.out)
			}
			if got := b.plat.Offsets(); !slices.Equal(got, []int64{0}) {
				t.Fatalf("download offsets %v: downloaded again", got)
			}
			wantStates(t, b.plat, ota.StateDownloading, ota.StateInstalled, ota.StateBooted)
			if v, slot := b.running(t); v != "2.0.2" || slot != "b" {
				t.Fatalf("running %s in %s", v, slot)
			}
			b.noLeftovers(t)
		})
	}
}

// TestUnacknowledgedReportResent: a report the platform did not get is
// sent again by the next step, and the update goes on from there.
func TestUnacknowledgedReportResent(t *testing.T) {
	b := newBench(t, 1, nil)
	b.plat.Offer("cmp_1", b.vendor.Image(t, otatest.ImageSpec{Counter: 2, Payload: "app two"}), otatest.Version(2), 2)
	b.plat.FailReports(errors.New("platform unreachable"))
	if _, err := b.agent(t).Step(context.Background()); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("step with the platform unreachable: %v", err)
	}
	b.plat.FailReports(nil)
	b.step(t)
	wantStates(t, b.plat, ota.StateDownloading, ota.StateInstalled, ota.StateBooted)
}

func TestDigestMismatch(t *testing.T) {
	b := newBench(t, 1, nil)
	img := b.vendor.Image(t, otatest.ImageSpec{Counter: 2, Payload: "app two"})
	a := b.plat.Offer("cmp_1", img, otatest.Version(2), 2)
	other := bytes.Clone(img)
	other[len(other)-1] ^= 1
	b.plat.Replace(a.Image.Digest, other)
	res := b.step(t)
	if res.Outcome == nil || res.Outcome.State != ota.StateFailed || res.Outcome.Reason != ota.ReasonDigestMismatch {
		t.Fatalf("outcome %+v", res.Outcome)
	}
	wantStates(t, b.plat, ota.StateDownloading, ota.StateFailed)
	b.noLeftovers(t)
	if v, _ := b.running(t); v != "2.0.1" {
		t.Fatalf("running %s", v)
	}
}

// TestROMRefusals: each of the ROM's refusals fails the update with its
// own reason; nothing is written to the inactive slot, the old image runs.
func TestROMRefusals(t *testing.T) {
	classKey, _ := sealing.GenerateKey(sealing.X25519)
	otherKey, _ := sealing.GenerateKey(sealing.X25519)
	stranger := otatest.NewVendor(t, 1)
	cases := []struct {
		name   string
		key    *sealing.PrivateKey
		image  func(v *otatest.Vendor) []byte
		reason string
	}{
		{"bad signature", nil, func(v *otatest.Vendor) []byte {
			img := v.Image(t, otatest.ImageSpec{Counter: 2, Payload: "app two"})
			img[len(img)-1] ^= 1 // inside the last signature's value
			return img
		}, "signature"},
		{"unknown root", nil, func(*otatest.Vendor) []byte {
			return stranger.Image(t, otatest.ImageSpec{Counter: 2, Payload: "app two"})
		}, "unknown-root"},
		{"rollback", nil, func(v *otatest.Vendor) []byte {
			return v.Image(t, otatest.ImageSpec{Counter: 0, Payload: "app zero"})
		}, "rollback"},
		{"wrong class key", classKey, func(v *otatest.Vendor) []byte {
			return v.Image(t, otatest.ImageSpec{Counter: 2, Payload: "app two", EncryptTo: otherKey.Public()})
		}, "decrypt"},
		{"no class key", nil, func(v *otatest.Vendor) []byte {
			return v.Image(t, otatest.ImageSpec{Counter: 2, Payload: "app two", EncryptTo: otherKey.Public()})
		}, "no-class-key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newBench(t, 1, c.key)
			b.plat.Offer("cmp_1", c.image(b.vendor), "2.0.2", 2)
			refused(t, b, c.reason)
		})
	}
	t.Run("retired root", func(t *testing.T) {
		b := newBench(t, 2, nil)
		b.plat.Offer("cmp_retire", b.vendor.Image(t, otatest.ImageSpec{Counter: 2, Payload: "app two", Retire: 1 << 0}), otatest.Version(2), 2)
		if res := b.step(t); res.Outcome.State != ota.StateBooted {
			t.Fatalf("retiring update: %+v", res.Outcome)
		}
		b.plat = otatest.New()
		b.plat.Offer("cmp_old", b.vendor.Image(t, otatest.ImageSpec{Counter: 3, Payload: "app three", Signers: []int{0}}), otatest.Version(3), 3)
		refused(t, b, "retired-root")
	})
}

func refused(t *testing.T, b *bench, reason string) {
	t.Helper()
	before, _ := b.running(t)
	res := b.step(t)
	if res.Outcome == nil || res.Outcome.State != ota.StateFailed || res.Outcome.Reason != reason {
		t.Fatalf("outcome %+v, want failed with %s\n%s", res.Outcome, reason, b.out)
	}
	wantStates(t, b.plat, ota.StateDownloading, ota.StateFailed)
	if v, _ := b.running(t); v != before || res.Outcome.FirmwareVersion != before {
		t.Fatalf("running %s after the refusal (report says %s), want %s", v, res.Outcome.FirmwareVersion, before)
	}
	dev, _ := device.Load(b.state, nil)
	if s := dev.LastUpdate(); s != nil && s.Version == res.Assignment.Image.Version && s.Outcome == device.UpdateInstalled {
		t.Fatal("the refused image was installed")
	}
	b.noLeftovers(t)
}

// TestNoBootRollsBack: an image that crashes before confirming is rolled
// back by the ROM; the agent reports rolled-back with the reason and the
// old version, and the counter is not burned.
func TestNoBootRollsBack(t *testing.T) {
	b := newBench(t, 1, nil)
	b.plat.Offer("cmp_1", b.vendor.Image(t, otatest.ImageSpec{Counter: 5, Payload: device.NoBootMarker}), otatest.Version(5), 5)
	res := b.step(t)
	if res.Outcome == nil || res.Outcome.State != ota.StateRolledBack || res.Outcome.Reason != device.ReasonNoBoot || res.Outcome.FirmwareVersion != "2.0.1" {
		t.Fatalf("outcome %+v", res.Outcome)
	}
	wantStates(t, b.plat, ota.StateDownloading, ota.StateInstalled, ota.StateRolledBack)
	dev, _ := device.Load(b.state, nil)
	if s := dev.LastUpdate(); s.Outcome != device.UpdateRolledBack || dev.SecurityCounter() != 1 {
		t.Fatalf("device after the rollback: %+v, counter %d", s, dev.SecurityCounter())
	}
	if v, slot := b.running(t); v != "2.0.1" || slot != "a" {
		t.Fatalf("running %s in slot %s", v, slot)
	}
	b.noLeftovers(t)
}

// TestChangedAssignmentDiscardsPartial: a partial download for another
// digest is dropped when the assignment changes; a poll with none keeps it.
func TestChangedAssignmentDiscardsPartial(t *testing.T) {
	b := newBench(t, 1, nil)
	b.plat.Offer("cmp_1", b.vendor.Image(t, otatest.ImageSpec{Counter: 2, Payload: strings.Repeat("two ", 5000)}), otatest.Version(2), 2)
	b.plat.CutNextDownload(500)
	b.agent(t).Step(context.Background())
	b.plat.SetAssignment(nil)
	b.step(t)
	if fi, err := os.Stat(ota.PartialPath(b.state)); err != nil || fi.Size() != 500 {
		t.Fatalf("a poll with no assignment lost the partial download: %v", err)
	}
	b.plat.Offer("cmp_2", b.vendor.Image(t, otatest.ImageSpec{Counter: 3, Payload: "three"}), otatest.Version(3), 3)
	res := b.step(t)
	if res.Outcome == nil || res.Outcome.State != ota.StateBooted || res.Outcome.CampaignID != "cmp_2" {
		t.Fatalf("outcome %+v", res.Outcome)
	}
	if got := b.plat.Offsets(); !slices.Equal(got, []int64{0, 0}) {
		t.Fatalf("offsets %v: the new image must start at 0", got)
	}
}

// TestMalformedAssignmentRefused: the agent fetches only from the
// firmware route, by the digest it checks.
func TestMalformedAssignmentRefused(t *testing.T) {
	b := newBench(t, 1, nil)
	a := b.plat.Offer("cmp_1", b.vendor.Image(t, otatest.ImageSpec{Counter: 2, Payload: "two"}), otatest.Version(2), 2)
	for name, mut := range map[string]func(*ota.Assignment){
		"foreign path":  func(a *ota.Assignment) { a.Image.Path = "https://evil.example/x" },
		"upper digest":  func(a *ota.Assignment) { a.Image.Digest = strings.ToUpper(a.Image.Digest) },
		"too large":     func(a *ota.Assignment) { a.Image.Size = firmware.MaxImageSize + 1 },
		"no campaign":   func(a *ota.Assignment) { a.CampaignID = "" },
		"empty target":  func(a *ota.Assignment) { a.Migration = &ota.MigrationOrder{} },
		"control chars": func(a *ota.Assignment) { a.Image.Version = "2\n0" },
	} {
		bad := a
		mut(&bad)
		b.plat.SetAssignment(&bad)
		if _, err := b.agent(t).Step(context.Background()); !errors.Is(err, ota.ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	wantStates(t, b.plat)
	b.noLeftovers(t)
}
