package devicecmd_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/ota"
	"github.com/hallmark-iot/hallmark/internal/ota/otatest"
)

// TestDeviceUpdateFromServer runs `device update --server --once` against
// update routes over mutual TLS: no assignment, an update that boots, one
// that does not (exit 1, its reason), and the two modes refused together.
func TestDeviceUpdateFromServer(t *testing.T) {
	dir := t.TempDir()
	vendor := otatest.NewVendor(t, 1)
	plat := otatest.New()
	state := filepath.Join(dir, "chip.json")
	vendor.Device(t, device.ClassKeygen, nil, state)
	srv, rootPEM := plat.Serve(t)
	caFile := filepath.Join(dir, "root.pem")
	os.WriteFile(caFile, rootPEM, 0o644)
	args := []string{"device", "update", "--state", state, "--server", srv.URL, "--ca-file", caFile, "--once"}

	if out := clitest.MustRun(t, nil, args...); !strings.Contains(out, "no update assigned") {
		t.Fatalf("no assignment: %q", out)
	}
	plat.Offer("cmp_1", vendor.Image(t, otatest.ImageSpec{Counter: 2, Payload: "app two"}), otatest.Version(2), 2)
	out := clitest.MustRun(t, nil, args...)
	for _, want := range []string{"downloading: from byte 0", "installed: 2.0.2", "booted: 2.0.2 confirmed in slot b", "reported: booted"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}

	plat.Offer("cmp_2", vendor.Image(t, otatest.ImageSpec{Counter: 3, Payload: device.NoBootMarker}), otatest.Version(3), 3)
	code, _, errOut := clitest.Run(t, nil, args...)
	if code != 1 || !strings.Contains(errOut, "[reason no-boot]") || !strings.Contains(errOut, "firmware 2.0.2 runs") {
		t.Fatalf("update that does not boot: exit %d, %q", code, errOut)
	}
	want := []ota.DeviceState{ota.StateDownloading, ota.StateInstalled, ota.StateBooted, ota.StateDownloading, ota.StateInstalled, ota.StateRolledBack}
	if got := plat.States(); !slices.Equal(got, want) {
		t.Fatalf("reports %v", got)
	}

	code, _, errOut = clitest.Run(t, nil, "device", "update", "--state", state, "--image", caFile, "--server", srv.URL)
	if code != 2 || !strings.Contains(errOut, "cannot be combined") {
		t.Fatalf("both modes: exit %d, %q", code, errOut)
	}
	code, _, errOut = clitest.Run(t, nil, "device", "update", "--state", state)
	if code != 2 || !strings.Contains(errOut, "--image FILE") {
		t.Fatalf("no mode: exit %d, %q", code, errOut)
	}
}
