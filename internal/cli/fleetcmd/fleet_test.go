package fleetcmd_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/app"
	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/pki"
)

// runFleet runs the command line.
func runFleet(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return clitest.Run(t, nil, args...)
}

// fleetReport is the part of fleet onboard --json the tests read.
type fleetReport struct {
	Requested, Attempted, Onboarded, Failed int64
	Errors                                  map[string]int64
	Verified                                bool
	Throughput                              float64            `json:"onboardings_per_second"`
	Latency                                 map[string]float64 `json:"latency_ms"`
	Connections                             string
	TLS                                     *struct{ Handshakes, Resumed int64 }
	CPU                                     *struct {
		ServerMS                     float64 `json:"server_ms"`
		ServerOnboarded              int64   `json:"server_onboarded"`
		ExtraMS                      float64 `json:"extra_ms"`
		LoadGeneratorMS              float64 `json:"load_generator_ms"`
		ServerPerOnboardingMS        float64 `json:"server_per_onboarding_ms"`
		LoadGeneratorPerOnboardingMS float64 `json:"load_generator_per_onboarding_ms"`
	}
	Ceiling *struct {
		Server         float64 `json:"server_onboardings_per_second"`
		RatioServer    float64 `json:"ratio_server"`
		HandshakeCPUMS float64 `json:"handshake_cpu_ms"`
		ServerCPUMS    float64 `json:"server_cpu_ms"`
		FloorFreshMS   float64 `json:"floor_fresh_ms"`
		FloorKeepMS    float64 `json:"floor_keep_alive_ms"`
		KeyExchange    string  `json:"handshake_key_exchange"`
	}
	FloorMS    float64 `json:"crypto_floor_ms"`
	FloorRatio float64 `json:"server_cpu_to_crypto_floor"`
}

func TestFleetManifestImportOnboard(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	t.Setenv("HALLMARK_KEYSTORE_PASSPHRASE", "fleet test passphrase")
	ks, stationPEM := filepath.Join(dir, "ks"), filepath.Join(dir, "station.pem")
	seed, man, rootPath := filepath.Join(dir, "seed"), filepath.Join(dir, "m.jsonl"), filepath.Join(dir, "root.pem")
	os.WriteFile(seed, []byte(strings.Repeat("ab", 32)+"\n"), 0o600)
	if code, _, errOut := runFleet(t, "station", "key", "create", "--keystore", ks, "--alg", "ed25519", "--pub-out", stationPEM); code != 0 {
		t.Fatal(errOut)
	}
	code, out, errOut := runFleet(t, "fleet", "manifest", "--seed-file", seed, "--devices", "200", "--keystore", ks, "--out", man, "--batch", "fleet-a")
	if code != 0 || !strings.HasPrefix(out, "batch fleet-a: 200 devices (ecdsa-p256, indexes 0-199)") || strings.Count(out, "\n") != 1 || errOut != "" {
		t.Fatalf("fleet manifest: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, _, errOut := runFleet(t, "fleet", "manifest", "--seed-file", seed, "--devices", "200", "--keystore", ks, "--out", man); code != 1 || !strings.Contains(errOut, "file exists") {
		t.Fatalf("fleet manifest over an existing file: exit %d, %q", code, errOut)
	}
	if code, out, _ := runFleet(t, "manifest", "verify", "--station", stationPEM, "--in", man); code != 0 || !strings.Contains(out, "200 device proofs valid") {
		t.Fatalf("manifest verify: exit %d, %q", code, out)
	}

	p, err := app.Start(ctx, app.Config{DataDir: filepath.Join(dir, "platform"), Listen: "127.0.0.1:0", ServerName: "localhost",
		RatePerIdentity: -1, RatePerAddress: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	os.WriteFile(rootPath, p.CA.RootPEM(), 0o644)
	admin := fleetAdmin(t, p)
	pub, _ := os.ReadFile(stationPEM)
	if _, err := admin.CreateStation(ctx, httpapi.StationRequest{Name: "fleet", PublicKey: string(pub)}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateProduct(ctx, httpapi.ProductRequest{ID: "sensor", Name: "Sensor", CertValidity: "720h", CloudEndpoint: "mqtts://broker.test:8883"}); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(man)
	res, err := admin.ImportManifest(ctx, "sensor", f)
	f.Close()
	if err != nil || res.Imported != 200 {
		t.Fatalf("import: %+v, %v", res, err)
	}

	platform := []string{"--server", p.URL(), "--ca-file", rootPath, "--seed-file", seed}
	code, out, errOut = runFleet(t, append([]string{"fleet", "onboard", "--devices", "200", "--concurrency", "8", "--json", "--ceiling", "20ms"}, platform...)...)
	var rep fleetReport
	if err := json.Unmarshal([]byte(out), &rep); code != 0 || err != nil || errOut != "" {
		t.Fatalf("fleet onboard: exit %d, stdout %q (%v), stderr %q", code, out, err, errOut)
	}
	if rep.Requested != 200 || rep.Attempted != 200 || rep.Onboarded != 200 || rep.Failed != 0 || len(rep.Errors) != 0 || !rep.Verified ||
		rep.Throughput <= 0 || rep.Latency["p50"] <= 0 || rep.Latency["p99"] > rep.Latency["max"] ||
		rep.Ceiling == nil || rep.Ceiling.Server <= 0 || rep.Ceiling.RatioServer != rep.Throughput/rep.Ceiling.Server {
		t.Fatalf("report: %+v", rep)
	}
	// Fresh connections by default: one full handshake per device; the
	// server's CPU read from its metrics, its count of onboardings the
	// load generator's; the ratio to the floor of fresh onboardings.
	if rep.Connections != "fresh" || rep.TLS == nil || rep.TLS.Handshakes != 200 || rep.TLS.Resumed != 0 {
		t.Fatalf("connections: %q, %+v", rep.Connections, rep.TLS)
	}
	if c := rep.CPU; c == nil || c.ServerMS <= 0 || c.ServerOnboarded != 200 || c.ExtraMS != 0 || c.LoadGeneratorMS <= 0 ||
		!near(c.ServerPerOnboardingMS, c.ServerMS/200) || c.LoadGeneratorPerOnboardingMS <= 0 {
		t.Fatalf("CPU: %+v", rep.CPU)
	}
	if c := rep.Ceiling; c.KeyExchange != "X25519MLKEM768" || c.HandshakeCPUMS <= 0 || !near(c.FloorFreshMS, c.HandshakeCPUMS+c.ServerCPUMS) ||
		rep.FloorMS != c.FloorFreshMS || !near(rep.FloorRatio, rep.CPU.ServerPerOnboardingMS/rep.FloorMS) {
		t.Fatalf("floor: %+v, %v, ratio %v", c, rep.FloorMS, rep.FloorRatio)
	}

	// Devices outside the imported range are all refused: counted by
	// kind, and the exit status says so.
	// Keep-alive: the devices share three connections.
	code, out, errOut = runFleet(t, append([]string{"fleet", "onboard", "--from", "5000", "--devices", "12", "--concurrency", "3", "--json",
		"--connections", "keep-alive", "--crypto-floor", "500us"}, platform...)...)
	rep = fleetReport{}
	if err := json.Unmarshal([]byte(out), &rep); code != 1 || err != nil || errOut != "hallmark: fleet onboard: 12 of 12 onboardings failed\n" {
		t.Fatalf("unknown devices: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if rep.Onboarded != 0 || rep.Failed != 12 || rep.Errors["proof-rejected"] != 12 || len(rep.Errors) != 1 {
		t.Fatalf("unknown devices: %+v", rep)
	}
	if rep.Connections != "keep-alive" || rep.TLS.Handshakes < 1 || rep.TLS.Handshakes > 6 || rep.CPU.ServerOnboarded != 0 ||
		rep.FloorMS != 0.5 || rep.FloorRatio != 0 {
		t.Fatalf("keep-alive: %+v, %+v, floor %v, ratio %v", rep.TLS, rep.CPU, rep.FloorMS, rep.FloorRatio)
	}
	code, out, _ = runFleet(t, append([]string{"fleet", "onboard", "--from", "5000", "--devices", "2", "--verify=false",
		"--extra-cpu-pid", strconv.Itoa(os.Getpid())}, platform...)...)
	if code != 1 || !strings.Contains(out, "onboarded 0 of 2 devices") || !strings.Contains(out, "chains not verified") ||
		!strings.Contains(out, "\nproof-rejected  2  ") ||
		!strings.Contains(out, "\nconnections: fresh (one new connection per device): 2 TLS handshakes, 0 resumed\n") ||
		!strings.Contains(out, "\nserver CPU: ") || !strings.Contains(out, " s over the run, no onboarding to divide by (the server counted 0 onboardings)\n") ||
		!strings.Contains(out, fmt.Sprintf("\n  + processes [%d] and their descendants: ", os.Getpid())) ||
		!strings.Contains(out, "\nload generator CPU: ") {
		t.Fatalf("text report: exit %d, %q", code, out)
	}
}

// near says two figures computed along different paths (milliseconds of
// durations in nanoseconds) agree to rounding.
func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b)) }

func fleetAdmin(t *testing.T, p *app.Platform) *httpapi.Client {
	t.Helper()
	token, err := os.ReadFile(p.AdminTokenPath())
	if err != nil {
		t.Fatal(err)
	}
	roots, err := pki.ParseTrustBundle(p.CA.RootPEM())
	if err != nil {
		t.Fatal(err)
	}
	c, err := httpapi.NewClient(p.URL(), strings.TrimSpace(string(token)), roots)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestFleetRefusesBadFlags(t *testing.T) {
	dir := t.TempDir()
	seed := filepath.Join(dir, "seed")
	os.WriteFile(seed, make([]byte, 32), 0o600)
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("abcd"), 0o600)
	hexSeed := strings.Repeat("00", 32)
	target := []string{"--server", "https://localhost:1", "--ca-file", seed}
	cases := map[string][]string{
		"no seed":          {"fleet", "onboard", "--devices", "1", "--server", "https://x", "--ca-file", seed},
		"two seeds":        {"fleet", "onboard", "--devices", "1", "--seed", hexSeed, "--seed-file", seed, "--server", "https://x", "--ca-file", seed},
		"short seed file":  append([]string{"fleet", "onboard", "--devices", "1", "--seed-file", short}, target...),
		"bad hex seed":     append([]string{"fleet", "onboard", "--devices", "1", "--seed", "zz"}, target...),
		"no devices":       append([]string{"fleet", "onboard", "--seed", hexSeed}, target...),
		"no server":        {"fleet", "onboard", "--devices", "1", "--seed", hexSeed},
		"concurrency 0":    append([]string{"fleet", "onboard", "--devices", "1", "--seed", hexSeed, "--concurrency", "0"}, target...),
		"unknown suite":    append([]string{"fleet", "onboard", "--devices", "1", "--seed", hexSeed, "--suite", "rsa"}, target...),
		"devices not int":  {"fleet", "manifest", "--devices", "many"},
		"too many":         {"fleet", "manifest", "--devices", "1000001", "--seed", hexSeed, "--keystore", dir, "--out", filepath.Join(dir, "m")},
		"no out":           {"fleet", "manifest", "--devices", "1", "--seed", hexSeed, "--keystore", dir},
		"connections":      append([]string{"fleet", "onboard", "--devices", "1", "--seed", hexSeed, "--connections", "sometimes"}, target...),
		"extra pid":        append([]string{"fleet", "onboard", "--devices", "1", "--seed", hexSeed, "--extra-cpu-pid", "0"}, target...),
		"extra pid no cpu": append([]string{"fleet", "onboard", "--devices", "1", "--seed", hexSeed, "--extra-cpu-pid", "1", "--cpu=false"}, target...),
		"floor twice":      append([]string{"fleet", "onboard", "--devices", "1", "--seed", hexSeed, "--ceiling", "1s", "--crypto-floor", "1ms"}, target...),
		"ceiling suite":    {"fleet", "ceiling"},
		"ceiling bad ca":   {"fleet", "ceiling", "--suite", "ed25519", "--ca-suite", "rsa"},
		"unknown fleet":    {"fleet", "nonsense"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := runFleet(t, args...)
			if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "hallmark: ") {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
			}
		})
	}
}

func TestFleetCeiling(t *testing.T) {
	code, out, errOut := runFleet(t, "fleet", "ceiling", "--suite", "ed25519", "--duration", "50ms", "--workers", "2", "--json")
	var c struct {
		Suite   string `json:"suite"`
		Workers int    `json:"workers"`
	}
	var raw map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &raw) != nil || json.Unmarshal([]byte(out), &c) != nil {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	server, _ := raw["server_onboardings_per_second"].(float64)
	shared, _ := raw["shared_onboardings_per_second"].(float64)
	if c.Suite != "ed25519" || c.Workers != 2 || server <= 0 || shared <= 0 || shared >= server {
		t.Fatalf("ceiling %s", out)
	}
	handshake, _ := raw["handshake_cpu_ms"].(float64)
	serverCPU, _ := raw["server_cpu_ms"].(float64)
	fresh, _ := raw["floor_fresh_ms"].(float64)
	keep, _ := raw["floor_keep_alive_ms"].(float64)
	if handshake <= 0 || serverCPU <= 0 || !near(fresh, handshake+serverCPU) || keep != serverCPU || raw["handshake_key_exchange"] != "X25519MLKEM768" {
		t.Fatalf("ceiling's floor %s", out)
	}
	code, out, _ = runFleet(t, "fleet", "ceiling", "--suite", "ed25519", "--duration", "20ms")
	if code != 0 || !strings.Contains(out, "server crypto alone:") ||
		!strings.Contains(out, "\nserver CPU, TLS 1.3 handshake (X25519MLKEM768, ecdsa-p256 certificate, chain of 2; ") ||
		!strings.Contains(out, "\nserver-side crypto floor, ed25519 devices: fresh TLS ") {
		t.Fatalf("text: exit %d, %q", code, out)
	}
}
