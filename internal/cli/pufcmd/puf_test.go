package pufcmd_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
	"github.com/hallmark-iot/hallmark/internal/puf"
)

const testChipSeed = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

// pufRun executes the command line in-process.
func pufRun(t *testing.T, stdin []byte, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return clitest.Run(t, stdin, args...)
}

func pufMustRun(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	code, out, errOut := pufRun(t, nil, args...)
	if code != 0 {
		t.Fatalf("hallmark %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out, errOut
}

var fingerprintRE = regexp.MustCompile(`seed fingerprint: ([0-9a-f]{64})`)

func fingerprint(t *testing.T, text string) string {
	t.Helper()
	m := fingerprintRE.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no fingerprint in %q", text)
	}
	return m[1]
}

func TestPUFEnrolReconstruct(t *testing.T) {
	dir := t.TempDir()
	helper := filepath.Join(dir, "helper.bin")
	out, errOut := pufMustRun(t, "puf", "enrol", "--chip-seed", testChipSeed, "--helper-out", helper)
	if errOut != "" {
		t.Fatalf("unexpected stderr %q", errOut)
	}
	enrolled := fingerprint(t, out)
	info, err := os.Stat(helper)
	if err != nil || info.Size() != int64(puf.HelperSize) || info.Mode().Perm() != 0o644 {
		t.Fatalf("helper file: %v, %v", info, err)
	}
	// Two independent noisy power-ups both give the enrolled seed.
	for range 2 {
		out, _ := pufMustRun(t, "puf", "reconstruct", "--chip-seed", testChipSeed, "--helper", helper)
		if got := fingerprint(t, out); got != enrolled {
			t.Fatalf("reconstructed fingerprint %s, enrolled %s", got, enrolled)
		}
	}
	// The seed written to standard output matches the fingerprint, and the
	// summary moves to standard error.
	seedHex, errOut := pufMustRun(t, "puf", "reconstruct", "--chip-seed", testChipSeed, "--helper", helper, "--seed-out", "-")
	seed, err := hex.DecodeString(strings.TrimSpace(seedHex))
	if err != nil || len(seed) != puf.SeedSize {
		t.Fatalf("seed output %q", seedHex)
	}
	if fp := sha256.Sum256(seed); hex.EncodeToString(fp[:]) != fingerprint(t, errOut) {
		t.Fatal("fingerprint is not SHA-256 of the seed")
	}
	seedFile := filepath.Join(dir, "seed.hex")
	pufMustRun(t, "puf", "reconstruct", "--chip-seed", testChipSeed, "--helper", helper, "--seed-out", seedFile)
	if info, err := os.Stat(seedFile); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("seed file: %v, %v", info, err)
	}
	// Enrolling again over the same file needs --force.
	if code, _, _ := pufRun(t, nil, "puf", "enrol", "--chip-seed", testChipSeed, "--helper-out", helper); code != 1 {
		t.Fatalf("overwrite without --force: exit %d", code)
	}
	pufMustRun(t, "puf", "enrol", "--chip-seed", testChipSeed, "--helper-out", helper, "--force")
}

func TestPUFReconstructFailures(t *testing.T) {
	dir := t.TempDir()
	helper := filepath.Join(dir, "helper.bin")
	pufMustRun(t, "puf", "enrol", "--chip-seed", testChipSeed, "--helper-out", helper)
	data, _ := os.ReadFile(helper)
	truncated := filepath.Join(dir, "truncated.bin")
	os.WriteFile(truncated, data[:len(data)-1], 0o644)
	otherChip := strings.Repeat("7", 64)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"other chip", []string{"--chip-seed", otherChip, "--helper", helper}, "reconstruction failed"},
		{"truncated helper", []string{"--chip-seed", testChipSeed, "--helper", truncated}, "malformed PUF helper data"},
		{"missing helper", []string{"--chip-seed", testChipSeed, "--helper", filepath.Join(dir, "nope")}, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := pufRun(t, nil, append([]string{"puf", "reconstruct"}, tt.args...)...)
			if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit 1 and one line with %q", code, out, errOut, tt.want)
			}
		})
	}
	t.Run("helper from standard input", func(t *testing.T) {
		code, out, errOut := pufRun(t, data, "puf", "reconstruct", "--chip-seed", testChipSeed, "--helper", "-")
		if code != 0 || !fingerprintRE.MatchString(out) {
			t.Fatalf("exit %d, %q %q", code, out, errOut)
		}
	})
}

func TestPUFBiasWarning(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		bias string
		warn bool
	}{{"0.5", false}, {"0.55", true}} {
		t.Run(tt.bias, func(t *testing.T) {
			_, errOut := pufMustRun(t, "puf", "enrol", "--chip-seed", testChipSeed, "--bias", tt.bias,
				"--helper-out", filepath.Join(dir, tt.bias))
			if got := strings.Contains(errOut, "warning: "); got != tt.warn {
				t.Fatalf("warning printed: %v, want %v (stderr %q)", got, tt.warn, errOut)
			}
		})
	}
}

func TestPUFUsageErrors(t *testing.T) {
	helper := filepath.Join(t.TempDir(), "h")
	tests := []struct {
		name string
		args []string
	}{
		{"enrol without chip seed", []string{"enrol", "--helper-out", helper}},
		{"enrol short chip seed", []string{"enrol", "--chip-seed", "abcd", "--helper-out", helper}},
		{"enrol non-hex chip seed", []string{"enrol", "--chip-seed", strings.Repeat("zz", 32), "--helper-out", helper}},
		{"enrol without helper-out", []string{"enrol", "--chip-seed", testChipSeed}},
		{"enrol helper to stdout", []string{"enrol", "--chip-seed", testChipSeed, "--helper-out", "-"}},
		{"enrol even reads", []string{"enrol", "--chip-seed", testChipSeed, "--helper-out", helper, "--reads", "4"}},
		{"enrol BER too high", []string{"enrol", "--chip-seed", testChipSeed, "--helper-out", helper, "--ber", "0.5"}},
		{"enrol bias one", []string{"enrol", "--chip-seed", testChipSeed, "--helper-out", helper, "--bias", "1"}},
		{"reconstruct without helper", []string{"reconstruct", "--chip-seed", testChipSeed}},
		{"table zero trials", []string{"table", "--trials", "0"}},
		{"table negative BER", []string{"table", "--ber", "-0.1"}},
		{"table non-numeric BER", []string{"table", "--ber", "0.1,high"}},
		{"table negative workers", []string{"table", "--workers", "-1"}},
		{"table bad seed", []string{"table", "--seed", "00"}},
		{"table argument", []string{"table", "extra"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := pufRun(t, nil, append([]string{"puf"}, tt.args...)...)
			if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "hallmark: ") {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit 2 and one error line", code, out, errOut)
			}
		})
	}
	if _, err := os.Stat(helper); !os.IsNotExist(err) {
		t.Fatal("a failed enrol left a helper file")
	}
}

// tableCounts keeps the columns of the table that a seed determines,
// dropping the timing.
func tableCounts(t *testing.T, out string) []string {
	t.Helper()
	var rows []string
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) == 8 && strings.HasPrefix(f[0], "0.") {
			rows = append(rows, strings.Join(f[:7], " "))
		}
	}
	return rows
}

func TestPUFTable(t *testing.T) {
	seed := strings.Repeat("5a", 32)
	args := []string{"puf", "table", "--trials", "2000", "--ber", "0.05,0.22", "--seed", seed}
	out1, _ := pufMustRun(t, append(args, "--workers", "1")...)
	out2, _ := pufMustRun(t, append(args, "--workers", "2")...)
	rows := tableCounts(t, out1)
	if len(rows) != 2 {
		t.Fatalf("want 2 rows, got %q", out1)
	}
	if !strings.HasPrefix(rows[0], "0.05 2000 0 0 0 ") {
		t.Fatalf("5%% row %q: want no failures", rows[0])
	}
	if f := strings.Fields(rows[1]); f[2] == "0" || f[3] != "0" {
		t.Fatalf("22%% row %q: want failures, none undetected", rows[1])
	}
	if got := tableCounts(t, out2); strings.Join(got, "\n") != strings.Join(rows, "\n") {
		t.Fatalf("same seed, different counts:\n%v\n%v", rows, got)
	}
	if !strings.Contains(out1, "Run seed: "+seed) || !strings.Contains(out1, "BCH(418,256,t=19)") {
		t.Fatalf("table header missing run seed or code: %q", out1)
	}
}

// TestPUFTableProgress: a table takes minutes, so on a terminal standard
// error shows how far each row is, erased before the row is printed; piped,
// it stays silent.
func TestPUFTableProgress(t *testing.T) {
	args := []string{"puf", "table", "--trials", "1000", "--ber", "0.05,0.10", "--seed", strings.Repeat("5a", 32)}
	code, out, errOut := clitest.RunOnTerminal(t, nil, args...)
	if code != 0 || len(tableCounts(t, out)) != 2 {
		t.Fatalf("exit %d, %q, %q", code, out, errOut)
	}
	for _, want := range []string{"BER 0.05 [", "BER 0.10 [", "] 1000/1000 trials 100.0%"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("terminal progress lacks %q: %q", want, errOut)
		}
	}
	if strings.Contains(errOut, "\n") || !strings.HasSuffix(errOut, "\r") {
		t.Errorf("progress lines not erased: %q", errOut)
	}
	if _, errOut := pufMustRun(t, args...); errOut != "" {
		t.Errorf("progress written to a pipe: %q", errOut)
	}
}
