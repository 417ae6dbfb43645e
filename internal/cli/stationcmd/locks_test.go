package stationcmd_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
)

// TestStationLocksThroughCLI: `station run` locks by default and a debug
// probe (`device debug-read`) gets nothing out of the chip; with
// --leave-open the same probe dumps the key store, the manifest says
// "open", and `device lock` closes the chip by hand for good.
func TestStationLocksThroughCLI(t *testing.T) {
	f := newLightFactory(t)
	base := append(f.stationArgs(filepath.Join(f.dir, "locked"), 2), "--classes", "keygen,puf", "--algs", "ed25519")
	out := clitest.MustRun(t, nil, base...)
	if !strings.Contains(out, "locked: debug port, key-store window and bootloader of every device") {
		t.Fatalf("station output:\n%s", out)
	}
	locked := filepath.Join(f.dir, "locked", "devices", "device-0000000.json")
	if out := clitest.MustRun(t, nil, "device", "locks", "--state", locked, "--json"); !strings.Contains(out, `"closed": true`) {
		t.Fatalf("device locks:\n%s", out)
	}
	for _, region := range []string{"key-store", "flash", "otp"} {
		code, stdout, errOut := clitest.Run(t, nil, "device", "debug-read", "--state", locked, "--region", region)
		if code != 1 || stdout != "" || !strings.Contains(errOut, "debug port is locked") || strings.Count(errOut, "\n") != 1 {
			t.Errorf("debug read of %s on a locked chip: exit %d, %q, %q", region, code, stdout, errOut)
		}
	}
	if out := clitest.MustRun(t, nil, "manifest", "inspect", "--in", filepath.Join(f.dir, "locked", "manifest.jsonl"), "--json", "--records", "2"); strings.Count(out, `"locks": "debug,key-store-window,bootloader"`)+strings.Count(out, `"locks":"debug,key-store-window,bootloader"`) != 2 {
		t.Fatalf("manifest inspect does not show both devices locked:\n%s", out)
	}

	openArgs := append(f.stationArgs(filepath.Join(f.dir, "open"), 1), "--classes", "keygen", "--algs", "ed25519", "--leave-open")
	if out := clitest.MustRun(t, nil, openArgs...); !strings.Contains(out, "left open (not locked): 1 devices") {
		t.Fatalf("station output:\n%s", out)
	}
	open := filepath.Join(f.dir, "open", "devices", "device-0000000.json")
	if out := clitest.MustRun(t, nil, "device", "debug-read", "--state", open, "--region", "key-store"); !strings.Contains(out, `"enrolment_key"`) {
		t.Fatalf("debug read of a development board does not give out its key:\n%s", out)
	}
	if out := clitest.MustRun(t, nil, "device", "lock", "--state", open, "--lock", "key-store-window"); !strings.Contains(out, "key-store-window") {
		t.Fatalf("device lock:\n%s", out)
	}
	if code, _, errOut := clitest.Run(t, nil, "device", "debug-read", "--state", open); code != 1 || !strings.Contains(errOut, "flash access window") {
		t.Fatalf("debug read behind the window: exit %d, %q", code, errOut)
	}
	clitest.MustRun(t, nil, "device", "lock", "--state", open)
	if code, _, errOut := clitest.Run(t, nil, "device", "program", "--state", open, "--image", filepath.Join(f.dir, "ief.bin")); code != 1 || !strings.Contains(errOut, "bootloader is locked") {
		t.Fatalf("programming an unsigned image into a locked chip: exit %d, %q", code, errOut)
	}
	if code, _, errOut := clitest.Run(t, nil, "device", "lock", "--state", open, "--lock", "jtag"); code != 2 || !strings.Contains(errOut, "jtag") {
		t.Fatalf("unknown lock: exit %d, %q", code, errOut)
	}
}

// lightFactory is newFactoryFiles with one Ed25519 vendor root and a key
// store of a low KDF count, so that the race detector does not make each
// run of the station spend seconds deriving the passphrase.
type lightFactory struct{ dir, vendorPub, ief, keystore, passFile string }

func newLightFactory(t *testing.T) lightFactory {
	t.Helper()
	d := t.TempDir()
	ks, passFile := clitest.NewKeyStore(t)
	f := lightFactory{dir: d, vendorPub: filepath.Join(d, "vendor.pub"), ief: filepath.Join(d, "ief.hmfw"), keystore: ks, passFile: passFile}
	vendor := filepath.Join(d, "vendor.pem")
	clitest.MustRun(t, nil, "keys", "generate", "--alg", "ed25519", "-o", vendor, "--pub-out", f.vendorPub)
	payload := filepath.Join(d, "ief.bin")
	clitest.MustRun(t, nil, "device", "ief-payload", "-o", payload)
	clitest.MustRun(t, nil, "firmware", "sign", "--type", "ief", "--in", payload, "--key", vendor, "-o", f.ief)
	clitest.MustRun(t, nil, "station", "key", "create", "--keystore", ks, "--passphrase-file", passFile, "--alg", "ed25519")
	return f
}

func (f lightFactory) stationArgs(dir string, count int) []string {
	return []string{"station", "run", "--dir", dir, "--count", itoa(count), "--ief", f.ief,
		"--root", f.vendorPub, "--keystore", f.keystore, "--passphrase-file", f.passFile}
}
