package fleetcmd_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/app"
	"github.com/hallmark-iot/hallmark/internal/cli/fleetcmd"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// probeTimingJSON is the part of fleet probe-timing --json the tests read.
type probeTimingJSON struct {
	Server string `json:"server"`
	Local  bool   `json:"local"`
	Suites []struct {
		Suite         string  `json:"suite"`
		SignedBy      string  `json:"signed_by"`
		Samples       int     `json:"samples"`
		KnownMedian   float64 `json:"known_median_us"`
		UnknownMedian float64 `json:"unknown_median_us"`
		Difference    float64 `json:"difference_us"`
		Test          struct {
			U, Z, P float64
		} `json:"mann_whitney"`
		Group    int     `json:"group"`
		Accuracy float64 `json:"median_attacker_accuracy"`
		Answer   string  `json:"answer"`
	} `json:"suites"`
}

func TestFleetProbeTimingLocal(t *testing.T) {
	code, out, errOut := runFleet(t, "fleet", "probe-timing", "--local", "--suite", "ed25519", "--suite", "ml-dsa-44",
		"--samples", "20", "--warmup", "2", "--group", "5", "--sign-with", "ecdsa-p256", "--json")
	var rep probeTimingJSON
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if !rep.Local || !strings.HasPrefix(rep.Server, "https://") || len(rep.Suites) != 2 ||
		rep.Suites[0].Suite != "ed25519" || rep.Suites[1].Suite != "ml-dsa-44" {
		t.Fatalf("report %+v", rep)
	}
	for _, s := range rep.Suites {
		if s.Samples != 20 || s.Group != 5 || s.SignedBy != "ecdsa-p256" || s.Answer != "401 proof-rejected" || s.KnownMedian <= 0 || s.UnknownMedian <= 0 ||
			s.Difference != s.KnownMedian-s.UnknownMedian || s.Test.U < 0 || s.Test.U > 400 || s.Test.P < 0 || s.Test.P > 1 ||
			s.Accuracy < 0 || s.Accuracy > 1 {
			t.Fatalf("%s: %+v", s.Suite, s)
		}
	}

	code, out, errOut = runFleet(t, "fleet", "probe-timing", "--local", "--suite", "ecdsa-p256", "--samples", "20", "--warmup", "0")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 4 || !strings.Contains(lines[0], "20 interleaved probes") ||
		!strings.HasPrefix(lines[1], "SUITE") || !strings.HasPrefix(lines[2], "ecdsa-p256 ") || !strings.Contains(lines[2], " µs") {
		t.Fatalf("text report: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// Against a running platform: given its registered identity, the probes
// run; on the platform's default rate limits they are refused, and the
// command says why in one line.
func TestFleetProbeTimingServer(t *testing.T) {
	ctx := context.Background()
	for _, limits := range []struct {
		name string
		rate int
	}{{"limits off", -1}, {"default limits", 0}} {
		t.Run(limits.name, func(t *testing.T) {
			dir := t.TempDir()
			p, err := app.Start(ctx, app.Config{DataDir: filepath.Join(dir, "platform"), Listen: "127.0.0.1:0", ServerName: "localhost",
				RatePerIdentity: limits.rate, RatePerAddress: limits.rate})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			rootPath := filepath.Join(dir, "root.pem")
			os.WriteFile(rootPath, p.CA.RootPEM(), 0o644)
			ed, err := sigalg.Ed25519.Suite()
			if err != nil {
				t.Fatal(err)
			}
			known, err := fleetcmd.RegisterTimingDevice(ctx, fleetAdmin(t, p), ed)
			if err != nil {
				t.Fatal(err)
			}
			code, out, errOut := runFleet(t, "fleet", "probe-timing", "--server", p.URL(), "--ca-file", rootPath,
				"--known", "ed25519="+known.String(), "--samples", "20", "--json")
			if limits.rate < 0 {
				var rep probeTimingJSON
				if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.Local || rep.Server != p.URL() ||
					len(rep.Suites) != 1 || rep.Suites[0].Samples != 20 {
					t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
				}
				return
			}
			if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "429 rate-limited") ||
				!strings.Contains(errOut, "--rate-per-identity -1") {
				t.Fatalf("rate limited: exit %d, stdout %q, stderr %q", code, out, errOut)
			}
		})
	}
}

func TestFleetProbeTimingRefusesBadFlags(t *testing.T) {
	id := strings.Repeat("ab", 32)
	for name, args := range map[string][]string{
		"samples below group":  {"--samples", "10"},
		"group 0":              {"--group", "0"},
		"known without server": {"--known", "ed25519=" + id},
		"server without known": {"--server", "https://localhost:1", "--ca-file", "root.pem"},
		"server without ca":    {"--server", "https://localhost:1", "--known", "ed25519=" + id},
		"known not a pair":     {"--server", "https://localhost:1", "--ca-file", "root.pem", "--known", id},
		"known bad suite":      {"--server", "https://localhost:1", "--ca-file", "root.pem", "--known", "rsa=" + id},
		"known bad identity":   {"--server", "https://localhost:1", "--ca-file", "root.pem", "--known", "ed25519=xyz"},
		"unknown suite":        {"--local", "--suite", "rsa"},
		"unknown sign-with":    {"--local", "--sign-with", "rsa"},
		"local and server":     {"--local", "--server", "https://localhost:1"},
	} {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := runFleet(t, append([]string{"fleet", "probe-timing"}, args...)...)
			if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "hallmark: ") {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
			}
		})
	}
}
