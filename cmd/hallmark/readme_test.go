package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hallmark-iot/hallmark/internal/store/postgres/pgtest"
)

// The README's walk through is executable: TestREADME runs its ```sh blocks
// top to bottom, as a newcomer would, so that the README cannot drift from
// the binary.
//
// Conventions of README.md that the test relies on:
//   - Every ```sh block runs, in order, in one bash (set -euo pipefail), except
//     a block right after a line <!-- not run: REASON -->, REASON saying why
//     it cannot run here (the quick start, for one: it runs this test).
//   - The blocks of the sections hardwareDemoSection (go run ./cmd/hallmark
//     demo --hsm) and installBlocksSection (how to get hallmark on the
//     PATH) run in the clone; every later block runs in a fresh temporary
//     directory.
//   - Servers the README starts in the background listen on the ports of
//     readmePorts and write their log to *.log files in that directory;
//     PostgreSQL databases it creates are named readmeDatabase.
const (
	readmeFile           = "../../README.md"
	installBlocksSection = "## Getting `hallmark`"
	hardwareDemoSection  = "## The demo with keys in hardware"
	notRunMarker         = "<!-- not run:"
	readmeDatabase       = "hallmark_tour"
	// readmeTimeout bounds the whole walk through, which takes 10 to 20 s.
	readmeTimeout = 2 * time.Minute
)

// readmePorts are the fixed ports of the README's commands. The test
// replaces each with a free port, so that it does not collide with a
// platform or broker the developer is running.
var readmePorts = []string{"8443", "8444", "8445", "8446", "8447", "8883", "8884"}

// readmeBlock is one ```sh block of the README.
type readmeBlock struct {
	line      int    // README line of the block's first command
	section   string // the "## " heading it is under
	text      string
	notRun    bool
	notRunWhy string
}

func TestREADME(t *testing.T) {
	blocks := readmeBlocks(t)
	var inClone, walk []readmeBlock
	for _, b := range blocks {
		switch {
		case b.notRun:
			t.Logf("README.md:%d: not run: %s", b.line, b.notRunWhy)
		case b.section == installBlocksSection || b.section == hardwareDemoSection:
			inClone = append(inClone, b)
		default:
			walk = append(walk, b)
		}
	}
	if len(inClone) == 0 || len(walk) == 0 {
		t.Fatalf("README.md: want blocks to run under %q and after it; found %d and %d", installBlocksSection, len(inClone), len(walk))
	}

	requireReadmeTools(t)
	clone, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	work := filepath.Join(root, "work")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	database := readmeDatabase + "_" + randomHex(8)
	t.Cleanup(func() { dropDatabase(t, database) })
	rewrite := readmeRewriter(t, database)

	script, lineMap := readmeScript(clone, work, inClone, walk, rewrite)
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = work
	cmd.Env = readmeEnv(t, root)
	transcript, err := os.Create(filepath.Join(root, "transcript"))
	if err != nil {
		t.Fatal(err)
	}
	defer transcript.Close()
	cmd.Stdout, cmd.Stderr = transcript, transcript
	// The README starts servers in the background: they share the script's
	// process group, which is killed at the end whatever happens.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killGroup(cmd.Process.Pid) })
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(readmeTimeout):
		killGroup(cmd.Process.Pid)
		<-done
		err = fmt.Errorf("still running after %v (a wait that never ends?)", readmeTimeout)
	}
	t.Logf("README walk through: %d blocks in %v", len(inClone)+len(walk), time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Errorf("README walk through failed: %v\n%s", err, failureReport(root, work, lineMap))
	}
}

// readmeTools are the programs the walk through runs besides hallmark, and
// the Debian package of each (.ci/run installs them).
var readmeTools = []struct{ path, pkg string }{
	{"bash", "bash"},
	{"openssl", "openssl"},
	{"/usr/sbin/mosquitto", "mosquitto"},
	{"mosquitto_ctrl", "mosquitto"},
	{"/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so", "mosquitto"},
	{"createdb", "postgresql-client"},
	{"/usr/lib/softhsm/libsofthsm2.so", "softhsm2"},
	{"swtpm", "swtpm"},
}

// requireReadmeTools fails the test, naming the package to install, when a
// program the README uses is missing: a newcomer would be told the same.
func requireReadmeTools(t *testing.T) {
	t.Helper()
	for _, tool := range readmeTools {
		var err error
		if filepath.IsAbs(tool.path) {
			_, err = os.Stat(tool.path)
		} else {
			_, err = exec.LookPath(tool.path)
		}
		if err != nil {
			t.Fatalf("the README walk through needs %s: install the %s package (apt-get install %s)", tool.path, tool.pkg, tool.pkg)
		}
	}
}

// readmeBlocks parses README.md's ```sh blocks.
func readmeBlocks(t *testing.T) []readmeBlock {
	t.Helper()
	data, err := os.ReadFile(readmeFile)
	if err != nil {
		t.Fatal(err)
	}
	var (
		blocks  []readmeBlock
		section string
		marker  string // the not-run marker just before, if any
		cur     *readmeBlock
		lines   []string
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur != nil && strings.TrimSpace(line) == "```":
			cur.text = strings.Join(lines, "\n") + "\n"
			blocks = append(blocks, *cur)
			cur, lines = nil, nil
		case cur != nil:
			lines = append(lines, line)
		case marker != "" && strings.TrimSpace(line) != "```sh":
			t.Fatalf("README.md:%d: %q must be the line right before a ```sh block", n-1, marker)
		case slices.Contains([]string{"```bash", "```shell", "```console"}, strings.TrimSpace(line)):
			t.Fatalf("README.md:%d: %s block: use ```sh, which this test runs", n, strings.TrimSpace(line))
		case strings.TrimSpace(line) == "```sh":
			cur = &readmeBlock{line: n + 1, section: section}
			if marker != "" {
				why := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(marker, notRunMarker), "-->"))
				if why == "" || !strings.HasSuffix(marker, "-->") {
					t.Fatalf("README.md:%d: %q wants a reason and a closing -->, on one line", n-1, marker)
				}
				cur.notRun, cur.notRunWhy = true, why
			}
		case strings.HasPrefix(line, "## "):
			section = line
		}
		marker = ""
		if trimmed := strings.TrimSpace(line); strings.HasPrefix(trimmed, notRunMarker) {
			marker = trimmed
		}
	}
	if cur != nil {
		t.Fatalf("README.md:%d: ```sh block not closed", cur.line-1)
	}
	return blocks
}

// readmeRewriter gives the README's ports free ones and its database a
// name of this run's own.
func readmeRewriter(t *testing.T, database string) func(string) string {
	t.Helper()
	free := make(map[string]string, len(readmePorts))
	for i, port := range freePorts(t, len(readmePorts)) {
		free[readmePorts[i]] = strconv.Itoa(port)
	}
	portRE := regexp.MustCompile(`\b(` + strings.Join(readmePorts, "|") + `)\b`)
	dbRE := regexp.MustCompile(`\b` + readmeDatabase + `\b`)
	return func(text string) string {
		text = dbRE.ReplaceAllLiteralString(text, database)
		return portRE.ReplaceAllStringFunc(text, func(port string) string { return free[port] })
	}
}

// readmeScript joins the blocks into one bash script and returns, for each
// script line, the README line it came from (0 for the test's own lines).
func readmeScript(clone, work string, inClone, walk []readmeBlock, rewrite func(string) string) (string, []int) {
	var b strings.Builder
	lineMap := []int{0} // script lines count from 1
	add := func(text string, readmeLine int) {
		for i, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
			b.WriteString(l + "\n")
			if readmeLine == 0 {
				lineMap = append(lineMap, 0)
			} else {
				lineMap = append(lineMap, readmeLine+i)
			}
		}
	}
	// The ERR trap names the failing command; errtrace (-E) carries it into
	// command substitutions, where the first failure happens.
	add(`set -Eeuo pipefail
trap 'echo "readme-test: script line $LINENO: exit status $?: $BASH_COMMAND" >&2' ERR
PS4='+ '
set -x`, 0)
	add("cd "+shellQuote(clone), 0)
	for _, blk := range inClone {
		add(rewrite(blk.text), blk.line)
	}
	add("cd "+shellQuote(work), 0)
	for _, blk := range walk {
		add(rewrite(blk.text), blk.line)
	}
	return b.String(), lineMap
}

// readmeEnv is the walk through's environment: this one without any
// HALLMARK_ or PG variable, with HOME and GOPATH in root (so that the
// README's `go install` writes there), and the developer's own go
// settings, module cache and build cache, which a new HOME would lose.
func readmeEnv(t *testing.T, root string) []string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the README installs hallmark with go, which is not on PATH: %v", err)
	}
	goVars := []string{"GOMODCACHE", "GOCACHE", "GOENV"}
	out, err := exec.Command(goCmd, append([]string{"env"}, goVars...)...).Output()
	if err != nil {
		t.Fatalf("go env: %v", err)
	}
	values := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(values) != len(goVars) {
		t.Fatalf("go env %v printed %q", goVars, out)
	}
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "HALLMARK_"), strings.HasPrefix(name, "PG"),
			name == "HOME", name == "GOPATH", name == "GOBIN", slices.Contains(goVars, name):
			continue
		}
		env = append(env, kv)
	}
	for i, name := range goVars {
		env = append(env, name+"="+values[i])
	}
	home, gopath := filepath.Join(root, "home"), filepath.Join(root, "gopath")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	// GOBIN as a variable, lest one in the developer's go env file win.
	return append(env, "HOME="+home, "GOPATH="+gopath, "GOBIN="+filepath.Join(gopath, "bin"))
}

// failureReport says where the walk through stopped: the README line and
// command the ERR trap named, the end of the transcript, and the end of
// each server log.
func failureReport(root, work string, lineMap []int) string {
	transcript, _ := os.ReadFile(filepath.Join(root, "transcript"))
	var b strings.Builder
	if m := regexp.MustCompile(`(?m)^readme-test: script line (\d+): exit status (\d+): (.*)$`).FindSubmatch(transcript); m != nil {
		n, _ := strconv.Atoi(string(m[1]))
		where := "the test's own script line " + string(m[1])
		if n < len(lineMap) && lineMap[n] != 0 {
			where = fmt.Sprintf("README.md:%d", lineMap[n])
		}
		fmt.Fprintf(&b, "%s: %s\nexited with status %s\n", where, m[3], m[2])
	}
	fmt.Fprintf(&b, "\n--- end of the transcript:\n%s", tail(transcript, 60))
	logs, _ := filepath.Glob(filepath.Join(work, "*", "*.log"))
	more, _ := filepath.Glob(filepath.Join(work, "*.log"))
	for _, log := range append(more, logs...) {
		data, _ := os.ReadFile(log)
		rel, _ := filepath.Rel(work, log)
		fmt.Fprintf(&b, "\n--- end of %s:\n%s", rel, tail(data, 20))
	}
	return b.String()
}

// tail is the last n lines of data.
func tail(data []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"…"}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n") + "\n"
}

// killGroup kills the walk through's process group (the script and the
// servers it started in the background) and waits until it is gone, so
// that nothing writes to the temporary directory while it is removed.
func killGroup(pgid int) {
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	for range 100 {
		if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dropDatabase drops the database the README's replicas made, if they did.
func dropDatabase(t *testing.T, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, pgtest.DefaultServer)
	if err != nil {
		t.Errorf("drop the README's database %s: %v", name, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		t.Errorf("drop the README's database %s: %v", name, err)
	}
}

// freePorts returns n distinct free loopback ports.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close() // held until all are chosen, so that they differ
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func randomHex(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	return hex.EncodeToString(b)
}

// shellQuote quotes s for bash.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
