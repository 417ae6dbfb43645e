package main

import (
	"bufio"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	// The SQLite driver the server uses, to read its database.
	_ "github.com/hallmark-iot/hallmark/internal/store/sqlite"
)

// TestImportSurvivesKill imports manifests into a real `hallmark serve`
// on SQLite and kills the server with SIGKILL at random moments of each
// import; after a restart each batch is there whole or not at all, and
// importing it again completes it.
func TestImportSurvivesKill(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "hallmark")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/hallmark-iot/hallmark/cmd/hallmark").CombinedOutput(); err != nil {
		t.Fatalf("build hallmark: %v\n%s", err, out)
	}
	env := append(os.Environ(), "HALLMARK_KEYSTORE_PASSPHRASE=kill-test-passphrase")
	var srv *server
	// The client's environment names the server running now: each start
	// listens on a new port.
	clientEnv := func() []string {
		if srv == nil {
			return env
		}
		return append(slices.Clone(env), "HALLMARK_SERVER="+srv.url,
			"HALLMARK_CA_FILE="+filepath.Join(dir, "data", "ca", "tls-root.pem"), "HALLMARK_TOKEN="+readToken(t, dir))
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir, cmd.Env = dir, clientEnv()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("hallmark %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("station", "key", "create", "--keystore", "ks", "--pub-out", "station.pub")
	if err := os.WriteFile(filepath.Join(dir, "fleet.seed"), []byte("kill-test-fleet-seed-32-bytes..."), 0o600); err != nil {
		t.Fatal(err)
	}
	// Large enough that an import lasts a while (about a second without
	// other load), small enough to be generated in a few seconds. Each
	// round imports its own batch, so none of them is a no-op.
	const devices, rounds = 4000, 3
	for r := range rounds {
		run("fleet", "manifest", "--seed-file", "fleet.seed", "--devices", fmt.Sprint(devices), "--from", fmt.Sprint(r*devices),
			"--suite", "ecdsa-p256", "--keystore", "ks", "--batch", batchName(r), "--out", manifestName(r))
	}

	srv = startServer(t, bin, dir, env)
	run("admin", "station", "add", "--name", "kill-test", "--public-key", "station.pub")
	run("admin", "product", "add", "--id", "kill", "--name", "Kill", "--cert-validity", "8760h", "--cloud-endpoint", "mqtts://localhost:8883")

	var complete, absent int
	for r := range rounds {
		imp := exec.Command(bin, "admin", "manifest", "import", "--product", "kill", manifestName(r))
		imp.Dir, imp.Env = dir, clientEnv()
		if err := imp.Start(); err != nil {
			t.Fatal(err)
		}
		// Later rounds kill later, so that kills land early and late in
		// the import and, on a fast machine, after its commit.
		step := int64(400 * time.Millisecond)
		time.Sleep(time.Duration(int64(r)*step + rand.Int64N(step)))
		srv.kill()
		imp.Wait()
		whole := checkBatch(t, dir, r)
		if whole {
			complete++
		} else {
			absent++
		}
		srv = startServer(t, bin, dir, env)
		out := run("admin", "manifest", "import", "--product", "kill", manifestName(r))
		want := fmt.Sprintf("imported %d devices", devices)
		if whole {
			want = fmt.Sprintf("was imported before (%d devices); nothing changed", devices)
		}
		if !strings.Contains(out, want) {
			t.Errorf("round %d: the import after the restart says\n%s\nwant %q", r, out, want)
		}
	}
	srv.kill()
	for r := range rounds {
		if !checkBatch(t, dir, r) {
			t.Fatalf("round %d: the import after the restart left the batch incomplete", r)
		}
	}
	t.Logf("%d rounds: %d killed before the commit, %d after", rounds, absent, complete)
}

func batchName(round int) string    { return fmt.Sprintf("kill-%d", round) }
func manifestName(round int) string { return fmt.Sprintf("manifest-%d.jsonl", round) }

// checkBatch reads the database of a stopped server and reports whether
// batch round is there whole; it fails the test if it is there in part.
func checkBatch(t *testing.T, dir string, round int) bool {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "data", "hallmark.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, count int
	if err := db.QueryRow(`SELECT count(*) FROM devices WHERE batch_id = ?`, batchName(round)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	err = db.QueryRow(`SELECT device_count FROM batches WHERE id = ?`, batchName(round)).Scan(&count)
	switch {
	case errors.Is(err, sql.ErrNoRows) && n == 0:
		return false
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		t.Fatal(err)
	case err == nil && n == count && n > 0:
		return true
	}
	t.Fatalf("round %d: batch of %d devices (%v) with %d devices registered after a kill: neither whole nor absent", round, count, err, n)
	return false
}

type server struct {
	cmd *exec.Cmd
	url string
}

// startServer starts `hallmark serve` on dir/data and waits until it
// serves.
func startServer(t *testing.T, bin, dir string, env []string) *server {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--data-dir", "data", "--listen", "127.0.0.1:0", "--log-level", "warn",
		"--rate-per-identity", "-1", "--rate-per-address", "-1")
	cmd.Dir, cmd.Env = dir, env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd}
	t.Cleanup(s.kill)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "hallmark serving at "); ok {
			s.url, _, _ = strings.Cut(rest, " ")
			go func() {
				for sc.Scan() {
				}
			}()
			return s
		}
	}
	t.Fatalf("hallmark serve ended before serving: %v", cmd.Wait())
	return nil
}

func (s *server) kill() {
	if s.cmd.ProcessState == nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
}

func readToken(t *testing.T, dir string) string {
	t.Helper()
	tok, err := os.ReadFile(filepath.Join(dir, "data", "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(tok))
}
