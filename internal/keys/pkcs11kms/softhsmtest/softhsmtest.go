// Package softhsmtest owns SoftHSM2 tokens for tests: each call makes a
// fresh, empty token and returns the keys URI that opens it (with
// module-path and a pin-source file) and the SOFTHSM2_CONF value child
// processes need to see it.
//
// SoftHSM2 reads SOFTHSM2_CONF, and scans its token directory, once per
// process, at C_Initialize; a token that another process (softhsm2-util)
// makes later stays invisible until the module is finalised and
// initialised again, which cannot happen while any Manager of the process
// is open. So New gives every test process one configuration with its
// own token directory (under os.TempDir, set as SOFTHSM2_CONF for the
// whole process on first use) and makes each test's token through the
// process's own instance of the module (C_InitToken on the free slot, via
// pkcs11kms.InitToken). Every test gets its own token, label, PIN and PIN
// file; the token's files are removed when the test ends, and the
// process's directory by a later test process once this one has exited.
// NewIsolated
// gives a test a token directory of its own, for tests that only hand the
// token to child processes.
package softhsmtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/keys/pkcs11kms"
)

// Token is a fresh SoftHSM2 token.
type Token struct {
	// URI opens the token with keys.Open (after importing pkcs11kms):
	// pkcs11:token=LABEL?module-path=…&pin-source=file:…
	URI string
	// Label is the token's label; PIN its user PIN, also in PINFile (mode
	// 0600, in the test's temporary directory).
	Label   string
	PIN     string
	PINFile string
	// Module is the SoftHSM2 module's file name.
	Module string
	// Conf is the softhsm2.conf that holds the token: the value of
	// SOFTHSM2_CONF for child processes (see Env).
	Conf string
	// Dir is the token directory (directories.tokendir of Conf).
	Dir string
}

// Env returns the environment entry a child process needs to see the
// token: append it to cmd.Env (after os.Environ()).
func (tok *Token) Env() string { return "SOFTHSM2_CONF=" + tok.Conf }

// Module returns the SoftHSM2 module's path, or fails the test naming the
// Debian package to install.
func Module(t testing.TB) string {
	t.Helper()
	for _, p := range pkcs11kms.SoftHSM2Paths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("SoftHSM2 module not found (looked for %s): install the Debian package softhsm2",
		strings.Join(pkcs11kms.SoftHSM2Paths, ", "))
	return ""
}

var (
	processOnce sync.Once
	processConf string
	processDir  string
	processErr  error
)

// processSetup makes this process's SoftHSM2 configuration and sets
// SOFTHSM2_CONF to it before any test can initialise the module.
func processSetup() (conf, dir string, err error) {
	processOnce.Do(func() {
		removeStale()
		root, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", rootPrefix, os.Getpid()))
		if err != nil {
			processErr = err
			return
		}
		processDir = filepath.Join(root, "tokens")
		processConf, processErr = writeConf(root, processDir)
		if processErr == nil {
			processErr = os.Setenv("SOFTHSM2_CONF", processConf)
		}
	})
	return processConf, processDir, processErr
}

// rootPrefix starts the name of each test process's directory, followed by
// its process ID, so that a later process can remove the directories of
// processes that have ended (a process cannot remove its own: the module
// may use it until the process exits).
const rootPrefix = "hallmark-softhsm-"

func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), rootPrefix+"*-*"))
	for _, dir := range dirs {
		pidText, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(dir), rootPrefix), "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(dir)
		}
	}
}

func writeConf(root, tokenDir string) (string, error) {
	if err := os.MkdirAll(tokenDir, 0o700); err != nil {
		return "", err
	}
	conf := filepath.Join(root, "softhsm2.conf")
	body := "directories.tokendir = " + tokenDir + "\n" +
		"objectstore.backend = file\n" +
		"log.level = ERROR\n" +
		"slots.removable = false\n"
	return conf, os.WriteFile(conf, []byte(body), 0o600)
}

func random(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// New makes a fresh token that this process, and child processes given
// tok.Env(), can open with tok.URI. The token is removed when the test
// ends, after the test's own cleanups (close Managers in those).
func New(t testing.TB) *Token {
	t.Helper()
	module := Module(t)
	conf, dir, err := processSetup()
	if err != nil {
		t.Fatalf("softhsmtest: set up the process's SoftHSM2 configuration: %v", err)
	}
	tok := newToken(t, module, conf, dir)
	so := random(8)
	if err := pkcs11kms.InitToken(context.Background(), module, tok.Label, []byte(so), []byte(tok.PIN)); err != nil {
		t.Fatalf("softhsmtest: make token %s: %v", tok.Label, err)
	}
	t.Cleanup(func() { removeToken(t, dir, tok.Label) })
	return tok
}

// NewIsolated makes a token in a token directory of the test's own (under
// t.TempDir), with softhsm2-util. Only child processes given tok.Env() see
// it: this process's module has its configuration already.
func NewIsolated(t testing.TB) *Token {
	t.Helper()
	module := Module(t)
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		t.Fatal("softhsm2-util not found: install the Debian package softhsm2")
	}
	root := t.TempDir()
	dir := filepath.Join(root, "tokens")
	conf, err := writeConf(root, dir)
	if err != nil {
		t.Fatalf("softhsmtest: %v", err)
	}
	tok := newToken(t, module, conf, dir)
	cmd := exec.Command(util, "--init-token", "--free", "--label", tok.Label,
		"--so-pin", random(8), "--pin", tok.PIN, "--module", module)
	cmd.Env = append(os.Environ(), tok.Env())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("softhsmtest: softhsm2-util --init-token: %v\n%s", err, out)
	}
	return tok
}

func newToken(t testing.TB, module, conf, dir string) *Token {
	t.Helper()
	tok := &Token{
		Label:   "t-" + random(8),
		PIN:     random(8),
		PINFile: filepath.Join(t.TempDir(), "pin"),
		Module:  module,
		Conf:    conf,
		Dir:     dir,
	}
	if err := os.WriteFile(tok.PINFile, []byte(tok.PIN+"\n"), 0o600); err != nil {
		t.Fatalf("softhsmtest: %v", err)
	}
	tok.URI = pkcs11kms.TokenURI(tok.Label, module, tok.PINFile)
	return tok
}

// removeToken deletes the files of the token labelled label. SoftHSM2
// names a token's directory by a UUID and writes the label into its
// token.object; the label is random, so finding it there is exact enough.
func removeToken(t testing.TB, dir, label string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Logf("softhsmtest: %v", err)
		return
	}
	for _, e := range entries {
		obj, err := os.ReadFile(filepath.Join(dir, e.Name(), "token.object"))
		if err == nil && strings.Contains(string(obj), label) {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				t.Logf("softhsmtest: remove token %s: %v", label, err)
			}
			return
		}
	}
}

// String describes the token for test logs, without its PIN.
func (tok *Token) String() string {
	return fmt.Sprintf("SoftHSM2 token %s (SOFTHSM2_CONF=%s)", tok.Label, tok.Conf)
}
