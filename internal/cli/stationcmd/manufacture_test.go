package stationcmd_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
)

// factoryFiles are the keys and images a batch needs, made through the CLI.
type factoryFiles struct {
	dir, vendor, vendorPub, vendorPQ, vendorPQPub, ief, keystore, stationPub string
}

const factoryPassphrase = "correct horse battery staple"

func newFactoryFiles(t *testing.T) factoryFiles {
	t.Helper()
	t.Setenv("HALLMARK_KEYSTORE_PASSPHRASE", factoryPassphrase)
	d := t.TempDir()
	f := factoryFiles{dir: d, vendor: filepath.Join(d, "vendor.pem"), vendorPub: filepath.Join(d, "vendor.pub"),
		vendorPQ: filepath.Join(d, "vendor-pq.pem"), vendorPQPub: filepath.Join(d, "vendor-pq.pub"),
		ief: filepath.Join(d, "ief.hmfw"), keystore: filepath.Join(d, "keystore"), stationPub: filepath.Join(d, "station.pub")}
	clitest.MustRun(t, nil, "keys", "generate", "--alg", "ecdsa-p256", "-o", f.vendor, "--pub-out", f.vendorPub)
	clitest.MustRun(t, nil, "keys", "generate", "--alg", "ml-dsa-65", "-o", f.vendorPQ, "--pub-out", f.vendorPQPub)
	payload := filepath.Join(d, "ief.bin")
	clitest.MustRun(t, nil, "device", "ief-payload", "-o", payload)
	clitest.MustRun(t, nil, "firmware", "sign", "--type", "ief", "--in", payload, "--key", f.vendor, "--key", f.vendorPQ, "-o", f.ief)
	clitest.MustRun(t, nil, "station", "key", "create", "--keystore", f.keystore, "--alg", "ml-dsa-65", "--pub-out", f.stationPub)
	return f
}

func (f factoryFiles) stationArgs(dir string, count int) []string {
	return []string{"station", "run", "--dir", dir, "--count", itoa(count), "--ief", f.ief,
		"--root", f.vendorPub, "--root", f.vendorPQPub, "--keystore", f.keystore}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestStationBatchThroughCLI runs a batch of 150 devices, ten of every class and suite,
// with a hybrid (ECDSA + ML-DSA) boot policy, verifies its manifest, and
// checks that changing any byte of the manifest is detected.
func TestStationBatchThroughCLI(t *testing.T) {
	f := newFactoryFiles(t)
	batch := filepath.Join(f.dir, "batch")
	out := clitest.MustRun(t, nil, f.stationArgs(batch, 150)...)
	if !strings.Contains(out, "150 enrolled, 0 rejected") || strings.Count(out, "/") < 20 {
		t.Fatalf("station output:\n%s", out)
	}
	manifestPath := filepath.Join(batch, "manifest.jsonl")
	out = clitest.MustRun(t, nil, "manifest", "verify", "--station", f.stationPub, "--in", manifestPath)
	if !strings.Contains(out, "150") {
		t.Fatalf("manifest verify output:\n%s", out)
	}
	data, _ := os.ReadFile(manifestPath)
	// Flip one byte in the header, a record and the trailer.
	for _, pos := range []int{10, len(data) / 2, len(data) - 5} {
		tampered := bytes.Clone(data)
		tampered[pos] ^= 0x01
		path := filepath.Join(f.dir, "tampered.jsonl")
		os.WriteFile(path, tampered, 0o644)
		if code, _, errOut := clitest.Run(t, nil, "manifest", "verify", "--station", f.stationPub, "--in", path); code == 0 {
			t.Errorf("a manifest with byte %d changed verifies", pos)
		} else if strings.Count(errOut, "\n") != 1 {
			t.Errorf("error is not one line: %q", errOut)
		}
	}
	// No puf device's state holds a key store.
	states, _ := filepath.Glob(filepath.Join(batch, "devices", "*.json"))
	if len(states) != 150 {
		t.Fatalf("%d device states", len(states))
	}
	for _, p := range states {
		state, _ := os.ReadFile(p)
		if bytes.Contains(state, []byte(`"class": "puf"`)) && bytes.Contains(state, []byte("key_store")) {
			t.Errorf("%s: a puf device with a key store", p)
		}
	}
}

// TestROMRefusalsThroughCLI reaches each refusal reason of the boot ROM
// from `hallmark device boot`.
func TestROMRefusalsThroughCLI(t *testing.T) {
	f := newFactoryFiles(t)
	d := f.dir
	other := filepath.Join(d, "other.pem")
	clitest.MustRun(t, nil, "keys", "generate", "--alg", "ed25519", "-o", other)
	classKey, classPub := filepath.Join(d, "class.pem"), filepath.Join(d, "class.pub")
	clitest.MustRun(t, nil, "firmware", "class-key", "generate", "-o", classKey, "--pub-out", classPub)
	app := filepath.Join(d, "app.bin")
	os.WriteFile(app, []byte("customer application"), 0o644)
	img := func(name string, args ...string) string {
		path := filepath.Join(d, name)
		clitest.MustRun(t, nil, append(append([]string{"firmware"}, args...), "--in", app, "-o", path)...)
		return path
	}
	images := map[string]string{
		"unsigned":   img("unsigned.hmfw", "encrypt", "--type", "app", "--to", classPub),
		"wrong-key":  img("wrong.hmfw", "sign", "--type", "app", "--key", other),
		"one-of-two": img("one.hmfw", "sign", "--type", "app", "--key", f.vendor),
		"counter-1":  img("c1.hmfw", "sign", "--type", "app", "--counter", "1", "--key", f.vendor, "--key", f.vendorPQ),
		"counter-5":  img("c5.hmfw", "sign", "--type", "app", "--counter", "5", "--key", f.vendor, "--key", f.vendorPQ),
		"encrypted":  img("enc.hmfw", "sign", "--type", "app", "--encrypt-to", classPub, "--key", f.vendor, "--key", f.vendorPQ),
	}
	good, _ := os.ReadFile(images["counter-5"])
	tamperedPayload := bytes.Clone(good)
	tamperedPayload[bytes.Index(good, []byte("customer application"))] ^= 1
	images["tampered-payload"] = filepath.Join(d, "tampered-payload.hmfw")
	os.WriteFile(images["tampered-payload"], tamperedPayload, 0o644)
	tamperedSig := bytes.Clone(good)
	tamperedSig[len(good)-10] ^= 1 // inside the last (ML-DSA) signature
	images["tampered-signature"] = filepath.Join(d, "tampered-signature.hmfw")
	os.WriteFile(images["tampered-signature"], tamperedSig, 0o644)

	newDev := func(name string, extra ...string) string {
		path := filepath.Join(d, name)
		clitest.MustRun(t, nil, append([]string{"device", "new", "--class", "keygen", "--alg", "ed25519",
			"--root", f.vendorPub, "--root", f.vendorPQPub, "-o", path}, extra...)...)
		return path
	}
	boot := func(state, image string) (int, string) {
		clitest.MustRun(t, nil, "device", "program", "--state", state, "--image", image)
		code, _, errOut := clitest.Run(t, nil, "device", "boot", "--state", state)
		return code, errOut
	}
	dev := newDev("dev.json")
	for _, tc := range []struct{ image, want string }{
		{"unsigned", "not signed"},
		{"wrong-key", "trusted root signature missing"},
		{"one-of-two", "trusted root signature missing"},
		{"tampered-payload", "malformed"},
		{"tampered-signature", "does not verify"},
		{"encrypted", "no class key"},
	} {
		code, errOut := boot(dev, images[tc.image])
		if code != 1 || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("boot %s: exit %d, %q; want one line with %q", tc.image, code, errOut, tc.want)
		}
	}
	if code, errOut := boot(dev, images["counter-5"]); code != 0 {
		t.Fatalf("boot of a good image: %s", errOut)
	}
	if code, errOut := boot(dev, images["counter-1"]); code != 1 || !strings.Contains(errOut, "rollback") {
		t.Errorf("rollback: exit %d, %q", code, errOut)
	}
	wrongClass := filepath.Join(d, "class2.pem")
	clitest.MustRun(t, nil, "firmware", "class-key", "generate", "-o", wrongClass)
	devWrongClass := newDev("dev2.json", "--class-key", wrongClass)
	if code, errOut := boot(devWrongClass, images["encrypted"]); code != 1 || !strings.Contains(errOut, "decrypt") {
		t.Errorf("encrypted to another class: exit %d, %q", code, errOut)
	}
	devClass := newDev("dev3.json", "--class-key", classKey)
	if code, errOut := boot(devClass, images["encrypted"]); code != 0 {
		t.Errorf("encrypted to the device's class: %q", errOut)
	}
	if code, _, errOut := clitest.Run(t, nil, "device", "boot", "--state", newDev("empty.json")); code != 1 || !strings.Contains(errOut, "no firmware image") {
		t.Errorf("boot with empty flash: %q", errOut)
	}
}

// TestStationSurvivesKill kills a real station process midway with SIGKILL
// and runs the same command again: the batch completes with every device
// exactly once.
func TestStationSurvivesKill(t *testing.T) {
	f := newFactoryFiles(t)
	bin := filepath.Join(t.TempDir(), "hallmark")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/hallmark-iot/hallmark/cmd/hallmark").CombinedOutput(); err != nil {
		t.Fatalf("build hallmark: %v\n%s", err, out)
	}
	const count = 200
	batch := filepath.Join(f.dir, "batch")
	cmd := exec.Command(bin, append(f.stationArgs(batch, count), "--workers", "4")...)
	cmd.Env = append(os.Environ(), "HALLMARK_KEYSTORE_PASSPHRASE="+factoryPassphrase)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	journal := filepath.Join(batch, "journal.jsonl")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for countLines(journal) < 20 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	before := countLines(journal)
	if before < 20 || before >= count {
		t.Fatalf("killed with %d of %d devices recorded; the test needs a kill midway", before, count)
	}
	if _, err := os.Stat(filepath.Join(batch, "manifest.jsonl")); err == nil {
		t.Fatal("a killed batch left a manifest")
	}
	out := clitest.MustRun(t, nil, f.stationArgs(batch, count)...)
	if !strings.Contains(out, itoa(count)+" enrolled, 0 rejected") {
		t.Fatalf("resumed station output:\n%s", out)
	}
	seen := map[string]bool{}
	file, _ := os.Open(filepath.Join(batch, "manifest.jsonl"))
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec struct{ Identity string }
		json.Unmarshal(sc.Bytes(), &rec)
		if rec.Identity == "" {
			continue
		}
		if seen[rec.Identity] {
			t.Fatalf("identity %s appears twice", rec.Identity)
		}
		seen[rec.Identity] = true
	}
	if len(seen) != count {
		t.Fatalf("manifest holds %d devices, want %d", len(seen), count)
	}
	clitest.MustRun(t, nil, "manifest", "verify", "--station", f.stationPub, "--in", filepath.Join(batch, "manifest.jsonl"))
}

func countLines(path string) int {
	data, _ := os.ReadFile(path)
	return bytes.Count(data, []byte("\n"))
}
