package fleetcmd_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/app"
	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/fleet"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// updateReport is the part of fleet update --json the tests read.
type updateReport struct {
	Requested, Attempted, Updated, Migrated, Failed int64
	Failures                                        map[string]int64
	Bytes                                           int64                         `json:"bytes_downloaded"`
	Updates                                         float64                       `json:"updates_per_second"`
	Migrations                                      float64                       `json:"migrations_per_second"`
	Latency                                         map[string]map[string]float64 `json:"latency_ms"`
}

// TestFleetUpdateMigrates runs the migration load end to end against a
// platform: a fleet imported and onboarded keeping its chains, an image
// uploaded under the product's vendor root, a migration campaign to
// ML-DSA-65 for every device, then fleet update: each device takes the
// image and moves its enrolment key, and the campaign completes.
func TestFleetUpdateMigrates(t *testing.T) {
	const n = 20
	ctx := context.Background()
	dir := t.TempDir()
	t.Setenv("HALLMARK_KEYSTORE_PASSPHRASE", "fleet test passphrase")
	path := func(name string) string { return filepath.Join(dir, name) }
	os.WriteFile(path("seed"), []byte(strings.Repeat("cd", 32)), 0o600)
	os.WriteFile(path("base.payload"), []byte("base firmware"), 0o600)
	os.WriteFile(path("update.payload"), []byte(strings.Repeat("update firmware ", 4096)), 0o600)
	for _, args := range [][]string{
		{"station", "key", "create", "--keystore", path("ks"), "--alg", "ed25519", "--pub-out", path("station.pem")},
		{"fleet", "manifest", "--seed-file", path("seed"), "--devices", "24", "--keystore", path("ks"), "--out", path("m.jsonl"), "--batch", "ota"},
		{"keys", "generate", "--alg", "ecdsa-p256", "--out", path("root.pem"), "--pub-out", path("root.pub")},
		{"firmware", "sign", "--in", path("base.payload"), "--type", "app", "--version", "1.0.0", "--counter", "1", "--key", path("root.pem"), "-o", path("base.hmfw")},
		{"firmware", "sign", "--in", path("update.payload"), "--type", "app", "--version", "2.0.0", "--counter", "2", "--key", path("root.pem"), "-o", path("update.hmfw")},
	} {
		if code, _, errOut := runFleet(t, args...); code != 0 {
			t.Fatalf("%v: %s", args, errOut)
		}
	}
	p, err := app.Start(ctx, app.Config{DataDir: path("platform"), Listen: "127.0.0.1:0", ServerName: "localhost",
		RatePerIdentity: -1, RatePerAddress: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	os.WriteFile(path("ca.pem"), p.CA.RootPEM(), 0o644)
	admin := fleetAdmin(t, p)
	pub, _ := os.ReadFile(path("station.pem"))
	if _, err := admin.CreateStation(ctx, httpapi.StationRequest{Name: "fleet", PublicKey: string(pub)}); err != nil {
		t.Fatal(err)
	}
	rootKey, err := (&cmdline.Streams{}).ReadKey(path("root.pub"))
	if err != nil {
		t.Fatal(err)
	}
	rootID, err := identity.FromPublicKey(cmdline.PublicOf(rootKey))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateProduct(ctx, httpapi.ProductRequest{ID: "meter", Name: "Meter", CertValidity: "720h",
		CloudEndpoint: "mqtts://broker.test:8883", FirmwareRoots: []string{rootID.String()}}); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(path("m.jsonl"))
	res, err := admin.ImportManifest(ctx, "meter", f)
	f.Close()
	if err != nil || res.Imported != 24 {
		t.Fatalf("import: %+v, %v", res, err)
	}
	platform := []string{"--server", p.URL(), "--ca-file", path("ca.pem"), "--seed-file", path("seed")}
	if code, out, errOut := runFleet(t, append([]string{"fleet", "onboard", "--devices", "22", "--concurrency", "4",
		"--credentials-out", path("creds")}, platform...)...); code != 0 {
		t.Fatalf("fleet onboard: exit %d, %q, %q", code, out, errOut)
	}
	if code, _, errOut := runFleet(t, append([]string{"fleet", "onboard", "--devices", "1", "--credentials-out", path("creds")}, platform...)...); code != 1 ||
		!strings.Contains(errOut, "file exists") {
		t.Fatalf("credentials over an existing file: exit %d, %q", code, errOut)
	}
	img, _ := os.Open(path("update.hmfw"))
	if _, err := admin.UploadFirmware(ctx, "meter", img); err != nil {
		t.Fatal(err)
	}
	img.Close()
	data, _ := os.ReadFile(path("update.hmfw"))
	digest := sha256.Sum256(data)
	// Two of the onboarded devices stay out of the campaign: they find no
	// assignment.
	var targets []string
	fl := fleetOf(t, path("seed"))
	for i := range uint64(n) {
		d, err := fl.Device(i)
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, d.Identity.String())
	}
	c, err := admin.CreateCampaign(ctx, httpapi.CampaignRequest{Product: "meter", Image: hex.EncodeToString(digest[:]),
		Devices: targets, MigrateTo: string(sigalg.MLDSA65)})
	if err != nil {
		t.Fatal(err)
	}

	update := append([]string{"fleet", "update", "--credentials", path("creds"), "--firmware-root", path("root.pub"),
		"--base-image", path("base.hmfw"), "--scratch-dir", path("scratch"), "--json"}, platform...)
	os.Mkdir(path("scratch"), 0o700)
	code, out, errOut := runFleet(t, append(update, "--devices", "22", "--concurrency", "6")...)
	var rep updateReport
	if err := json.Unmarshal([]byte(out), &rep); code != 1 || err != nil || errOut != "hallmark: fleet update: 2 of 22 devices failed\n" {
		t.Fatalf("fleet update: exit %d, stdout %q (%v), stderr %q", code, out, err, errOut)
	}
	if rep.Requested != 22 || rep.Attempted != 22 || rep.Updated != n || rep.Migrated != n || rep.Failed != 2 ||
		rep.Failures["no-assignment"] != 2 || len(rep.Failures) != 1 || rep.Bytes != n*int64(len(data)) ||
		rep.Updates <= 0 || rep.Migrations <= 0 {
		t.Fatalf("report: %+v", rep)
	}
	for _, step := range []string{"poll", "download", "report-downloading", "report-installed", "report-booted",
		"migrate-challenge", "migrate", "report-migrated", "device"} {
		l := rep.Latency[step]
		want := float64(n)
		if step == "poll" {
			want = 22
		}
		if l["count"] != want || l["p50"] <= 0 || l["p99"] > l["max"] {
			t.Fatalf("step %s: %v, want %v of them", step, l, want)
		}
	}
	if left, _ := os.ReadDir(path("scratch")); len(left) != 0 {
		t.Fatalf("the scratch directory keeps %d entries", len(left))
	}
	got, err := admin.GetCampaign(ctx, c.ID)
	if err != nil || got.State != "completed" {
		t.Fatalf("campaign: %+v, %v", got, err)
	}
	// The migrated devices' old identities are gone: a second run finds
	// their old certificates refused, and says so by reason.
	code, out, _ = runFleet(t, append(update, "--devices", "3")...)
	rep = updateReport{}
	if err := json.Unmarshal([]byte(out), &rep); code != 1 || err != nil || rep.Failed != 3 || rep.Updated != 0 || len(rep.Failures) != 1 {
		t.Fatalf("second run: exit %d, %q", code, out)
	}
}

func TestFleetUpdateRefusesBadFlags(t *testing.T) {
	dir := t.TempDir()
	seed, creds := filepath.Join(dir, "seed"), filepath.Join(dir, "creds")
	os.WriteFile(seed, make([]byte, 32), 0o600)
	os.WriteFile(creds, []byte("not a credentials file"), 0o600)
	base := []string{"fleet", "update", "--seed-file", seed, "--devices", "2", "--server", "https://127.0.0.1:1", "--ca-file", seed}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"fleet", "update", "--seed-file", seed, "--devices", "2"}, "--server URL and --ca-file FILE are required"},
		{base, "--credentials FILE, --base-image FILE and at least one --firmware-root KEY are required"},
		{append(base, "--credentials", creds, "--base-image", seed, "--firmware-root", seed, "--concurrency", "0"), "--concurrency and --attempts must be at least 1"},
		{append(base, "--credentials", creds, "--base-image", seed, "--firmware-root", seed, "--firmware-root", seed, "--firmware-root", seed,
			"--firmware-root", seed, "--firmware-root", seed), "at most 4 --firmware-root keys"},
	} {
		code, out, errOut := runFleet(t, tc.args...)
		if code != 2 || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args[2:], code, out, errOut, tc.want)
		}
	}
}

// fleetOf is the ECDSA P-256 fleet of the hex seed in path.
func fleetOf(t *testing.T, path string) *fleet.Fleet {
	t.Helper()
	data, _ := os.ReadFile(path)
	seed, err := hex.DecodeString(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	suite, _ := sigalg.ECDSAP256.Suite()
	fl, err := fleet.New(seed, suite, nil)
	if err != nil {
		t.Fatal(err)
	}
	return fl
}
