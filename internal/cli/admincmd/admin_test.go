package admincmd_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
	"github.com/hallmark-iot/hallmark/internal/store/sqlite"
)

// adminEnv is a platform API on a real SQLite store behind an httptest TLS
// server, and the files an administrator holds: its CA and a token.
type adminEnv struct {
	ts                *httptest.Server
	store             store.Store
	dir               string
	caFile, tokenFile string
}

func newAdminEnv(t *testing.T) *adminEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "hallmark.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc := admin.New(st, admin.Config{})
	srv, err := httpapi.New(httpapi.Config{Admin: svc, Audit: st, Ready: st.Ping})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv)
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	ts.StartTLS()
	t.Cleanup(ts.Close)
	e := &adminEnv{ts: ts, store: st, dir: dir, caFile: filepath.Join(dir, "ca.pem"), tokenFile: filepath.Join(dir, "admin.token")}
	os.WriteFile(e.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o644)
	if created, err := svc.Tokens.EnsureBootstrapToken(ctx, e.tokenFile); err != nil || !created {
		t.Fatalf("bootstrap token: %v %v", created, err)
	}
	return e
}

// admin runs `hallmark admin` with the connection flags.
func (e *adminEnv) admin(t *testing.T, stdin []byte, args ...string) (int, string, string) {
	t.Helper()
	full := append([]string{"admin", "--server", e.ts.URL, "--token-file", e.tokenFile, "--ca-file", e.caFile}, args...)
	return clitest.Run(t, stdin, full...)
}

func (e *adminEnv) mustAdmin(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := e.admin(t, nil, args...)
	if code != 0 {
		t.Fatalf("hallmark admin %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// wantProblemLine checks a failed command printed the server's problem as
// one line and exited 1.
func wantProblemLine(t *testing.T, code int, errOut, problemCode string) {
	t.Helper()
	if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "hallmark: ") || !strings.HasSuffix(errOut, "("+problemCode+")\n") {
		t.Fatalf("exit %d, stderr %q: want one line ending (%s)", code, errOut, problemCode)
	}
}

func deriveTestKey(t *testing.T, alg sigalg.ID, name string, n int) crypto.Signer {
	t.Helper()
	suite, err := alg.Suite()
	if err != nil {
		t.Fatal(err)
	}
	seed := sha256.Sum256(fmt.Appendf(nil, "%s/%d", name, n))
	key, err := suite.DeriveKey(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// testManifest writes a signed manifest of n Ed25519 devices named by
// prefix, and returns it with their identities.
func adminManifest(t *testing.T, station crypto.Signer, batch, prefix string, n int) ([]byte, []identity.ID) {
	t.Helper()
	var buf bytes.Buffer
	w, err := manifest.NewWriter(&buf, manifest.Header{Batch: batch}, station)
	if err != nil {
		t.Fatal(err)
	}
	var ids []identity.ID
	for i := range n {
		key := deriveTestKey(t, sigalg.Ed25519, prefix, i)
		id, _ := identity.FromPublicKey(key.Public())
		nonce := sha256.Sum256(id[:])
		proof, err := sigalg.Sign(key, identity.ProofMessage(identity.FactoryProofContext, nonce[:], id))
		if err != nil {
			t.Fatal(err)
		}
		err = w.Add(context.Background(), manifest.Record{Identity: id, Algorithm: sigalg.Ed25519, PublicKey: key.Public(),
			RootOfTrust: manifest.Keygen, Injection: manifest.NotInjected, Nonce: nonce[:], Proof: proof,
			Time: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), ids
}

func TestAdminWorkflow(t *testing.T) {
	e := newAdminEnv(t)
	station := e.stations(t)
	ids := e.imports(t, station)
	e.devices(t, station, ids)
	e.tokens(t, ids)
	e.auditLog(t)
}

func (e *adminEnv) stations(t *testing.T) crypto.Signer {
	station := deriveTestKey(t, sigalg.MLDSA65, "station", 0)
	stationID, _ := identity.FromPublicKey(station.Public())
	keyFile := filepath.Join(e.dir, "station.pub")
	pubPEM, _ := sigalg.EncodePublicKeyPEM(station.Public())
	os.WriteFile(keyFile, pubPEM, 0o644)

	out := e.mustAdmin(t, "station", "add", "--name", "Line 1", "--public-key", keyFile)
	if out != fmt.Sprintf("registered station %s (ml-dsa-65) \"Line 1\"\n", stationID) {
		t.Fatalf("station add: %q", out)
	}
	if out := e.mustAdmin(t, "station", "list"); !strings.Contains(out, stationID.String()) || !strings.Contains(out, "Line 1") {
		t.Fatalf("station list: %q", out)
	}
	code, _, errOut := e.admin(t, nil, "station", "add", "--name", "again", "--public-key", keyFile)
	wantProblemLine(t, code, errOut, "conflict")

	e.mustAdmin(t, "product", "add", "--id", "sensor", "--name", "Sensor", "--cert-validity", "8760h", "--cloud-endpoint", "mqtts://broker.example.com:8883")
	if out := e.mustAdmin(t, "product", "list"); !strings.Contains(out, "sensor") || !strings.Contains(out, "8760h") {
		t.Fatalf("product list: %q", out)
	}
	code, _, errOut = e.admin(t, nil, "product", "add", "--id", "x", "--name", "X", "--cert-validity", "forever", "--cloud-endpoint", "https://x.example.com")
	wantProblemLine(t, code, errOut, "malformed-request")
	if !strings.HasPrefix(errOut, "hallmark: Malformed request: cert_validity: ") {
		t.Fatalf("problem line %q", errOut)
	}
	return station
}

// imports imports 12 devices from a file, again from standard input, and
// refuses an overlapping and a truncated manifest.
func (e *adminEnv) imports(t *testing.T, station crypto.Signer) []identity.ID {
	data, ids := adminManifest(t, station, "batch-1", "dev", 12)
	mfile := filepath.Join(e.dir, "batch-1.hmm")
	os.WriteFile(mfile, data, 0o644)
	if out := e.mustAdmin(t, "manifest", "import", "--product", "sensor", mfile); !strings.HasPrefix(out, "imported 12 devices of batch batch-1") {
		t.Fatalf("import: %q", out)
	}
	code, out, errOut := e.admin(t, data, "manifest", "import", "--product", "sensor", "-")
	if code != 0 || !strings.Contains(out, "imported before") {
		t.Fatalf("re-import: %d %q %q", code, out, errOut)
	}
	// Overlapping devices: their identities on stdout, one problem line.
	overlap, _ := adminManifest(t, station, "batch-2", "dev", 3)
	code, out, errOut = e.admin(t, overlap, "manifest", "import", "--product", "sensor", "-")
	wantProblemLine(t, code, errOut, "duplicate-devices")
	if lines := strings.Fields(out); len(lines) != 3 || lines[0] != ids[0].String() {
		t.Fatalf("duplicates printed %q", out)
	}
	code, _, errOut = e.admin(t, data[:len(data)-20], "manifest", "import", "--product", "sensor", "-")
	wantProblemLine(t, code, errOut, "manifest-invalid")
	return ids
}

func (e *adminEnv) devices(t *testing.T, station crypto.Signer, ids []identity.ID) {
	stationID, _ := identity.FromPublicKey(station.Public())
	var list httpapi.DeviceList
	if err := json.Unmarshal([]byte(e.mustAdmin(t, "device", "list", "--json", "--limit", "5", "--all")), &list); err != nil || len(list.Devices) != 12 {
		t.Fatalf("device list --all: %d devices, %v", len(list.Devices), err)
	}
	code, out, errOut := e.admin(t, nil, "device", "list", "--limit", "5")
	if code != 0 || strings.Count(out, "\n") != 6 || !strings.Contains(errOut, "--after") {
		t.Fatalf("one page: %q %q", out, errOut)
	}
	// On a terminal the hint comes after the table, where the reader is.
	code, both := clitest.RunCombined(t, nil, "admin", "--server", e.ts.URL, "--token-file", e.tokenFile, "--ca-file", e.caFile,
		"device", "list", "--limit", "5")
	if lines := strings.Split(strings.TrimSpace(both), "\n"); code != 0 || len(lines) != 7 ||
		!strings.HasPrefix(lines[0], "IDENTITY") || !strings.HasPrefix(lines[6], "more devices: --after ") {
		t.Fatalf("one page, as a terminal shows it:\n%s", both)
	}
	if out := e.mustAdmin(t, "device", "get", ids[4].String()); !regexp.MustCompile(`(?m)^state:\s+registered$`).MatchString(out) || !regexp.MustCompile(`(?m)^imported:\s+\d{4}-`).MatchString(out) || !strings.Contains(out, stationID.String()) {
		t.Fatalf("device get: %q", out)
	}
	if out := e.mustAdmin(t, "device", "revoke", ids[4].String(), "--reason", "lost in transit"); !strings.HasPrefix(out, "revoked device "+ids[4].String()) {
		t.Fatalf("revoke: %q", out)
	}
	if out := e.mustAdmin(t, "device", "list", "--state", "revoked"); strings.Count(out, "\n") != 2 || !strings.Contains(out, ids[4].String()) {
		t.Fatalf("revoked list: %q", out)
	}
	// The other transitions print the device's new state; a refused one
	// names the problem.
	for _, c := range []struct{ cmd, done, state string }{
		{"decommission", "decommissioned", "decommissioned"}, {"reprovision", "reprovisioned", "registered"},
	} {
		out := e.mustAdmin(t, "device", c.cmd, ids[6].String(), "--reason", "end of pilot")
		if !strings.HasPrefix(out, c.done+" device "+ids[6].String()) || !strings.HasSuffix(out, "state "+c.state+"\n") {
			t.Fatalf("%s: %q", c.cmd, out)
		}
	}
	code, _, errOut = e.admin(t, nil, "device", "suspend", ids[6].String(), "--reason", "x")
	wantProblemLine(t, code, errOut, "transition-not-allowed")
	if !strings.Contains(errOut, "registered") {
		t.Fatalf("refused suspend does not name the state: %q", errOut)
	}
	if code, _, _ := e.admin(t, nil, "device", "resume", ids[6].String()); code != 2 {
		t.Fatalf("resume without --reason: exit %d, want a usage error", code)
	}
	code, _, errOut = e.admin(t, nil, "device", "get", strings.Repeat("0", 64))
	wantProblemLine(t, code, errOut, "not-found")
	if code, _, _ := e.admin(t, nil, "device", "get", "nope"); code != 2 {
		t.Fatalf("malformed identity: exit %d", code)
	}
}

// tokens makes a reader token, which cannot revoke, then revokes it.
func (e *adminEnv) tokens(t *testing.T, ids []identity.ID) {
	tokenOut := filepath.Join(e.dir, "reader.token")
	code, _, errOut := e.admin(t, nil, "token", "create", "--name", "reader", "--scope", "devices:read,audit:read", "--ttl", "24h", "--out", tokenOut)
	if info, err := os.Stat(tokenOut); code != 0 || err != nil || info.Mode().Perm() != 0o600 || !strings.Contains(errOut, "created token") {
		t.Fatalf("token create: %d %q %v", code, errOut, err)
	}
	reader := &adminEnv{ts: e.ts, caFile: e.caFile, tokenFile: tokenOut}
	reader.mustAdmin(t, "device", "list")
	code, _, errOut = reader.admin(t, nil, "device", "revoke", ids[5].String(), "--reason", "x")
	wantProblemLine(t, code, errOut, "forbidden")
	readerID := strings.SplitN(strings.TrimSpace(readFile(t, tokenOut)), "_", 3)[1]
	if out := e.mustAdmin(t, "token", "list"); !strings.Contains(out, readerID) || strings.Contains(out, readFile(t, tokenOut)[15:]) {
		t.Fatalf("token list: %q", out)
	}
	e.mustAdmin(t, "token", "revoke", readerID)
	code, _, errOut = reader.admin(t, nil, "device", "list")
	wantProblemLine(t, code, errOut, "unauthorized")
}

// auditLog checks the log shows each action, the refused ones too.
func (e *adminEnv) auditLog(t *testing.T) {
	var audit httpapi.AuditList
	if err := json.Unmarshal([]byte(e.mustAdmin(t, "audit", "--json", "--all", "--limit", "7")), &audit); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, ev := range audit.Events {
		seen[ev.Action+"/"+ev.Outcome] = true
	}
	for _, want := range []string{"token.create/ok", "station.create/ok", "station.create/error", "product.create/ok", "product.create/error",
		"manifest.import/ok", "manifest.import/error", "device.revoke/ok", "device.revoke/denied", "token.revoke/ok", "device.list/denied"} {
		if !seen[want] {
			t.Errorf("audit log lacks %s", want)
		}
	}
	if out := e.mustAdmin(t, "audit", "--action", "device.revoke"); strings.Count(out, "\n") != 3 || !strings.Contains(out, "lost in transit") {
		t.Fatalf("audit --action: %q", out)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestAdminConnection(t *testing.T) {
	e := newAdminEnv(t)
	t.Run("untrusted certificate", func(t *testing.T) {
		code, _, errOut := clitest.Run(t, nil, "admin", "--server", e.ts.URL, "--token-file", e.tokenFile, "station", "list")
		if code != 1 || !strings.Contains(errOut, "certificate") || strings.Count(errOut, "\n") != 1 {
			t.Fatalf("exit %d: %q", code, errOut)
		}
	})
	t.Run("plain http refused", func(t *testing.T) {
		code, _, errOut := clitest.Run(t, nil, "admin", "--server", "http://"+e.ts.Listener.Addr().String(), "--token-file", e.tokenFile, "station", "list")
		if code != 2 || !strings.Contains(errOut, "https") {
			t.Fatalf("exit %d: %q", code, errOut)
		}
	})
	t.Run("TLS 1.2 server refused", func(t *testing.T) {
		old := httptest.NewUnstartedServer(e.ts.Config.Handler)
		old.TLS = &tls.Config{MaxVersion: tls.VersionTLS12}
		old.Config.ErrorLog = log.New(io.Discard, "", 0)
		old.StartTLS()
		defer old.Close()
		ca := filepath.Join(t.TempDir(), "ca.pem")
		os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: old.Certificate().Raw}), 0o644)
		code, _, errOut := clitest.Run(t, nil, "admin", "--server", old.URL, "--token-file", e.tokenFile, "--ca-file", ca, "station", "list")
		if code != 1 || !strings.Contains(strings.ToLower(errOut), "version") {
			t.Fatalf("exit %d: %q", code, errOut)
		}
	})
	t.Run("no token", func(t *testing.T) {
		t.Setenv("HALLMARK_TOKEN", "")
		t.Setenv("HALLMARK_TOKEN_FILE", "")
		code, _, errOut := clitest.Run(t, nil, "admin", "--server", e.ts.URL, "--ca-file", e.caFile, "station", "list")
		if code != 2 || !strings.Contains(errOut, "no admin token") {
			t.Fatalf("exit %d: %q", code, errOut)
		}
	})
	t.Run("no token flag", func(t *testing.T) {
		code, _, _ := clitest.Run(t, nil, "admin", "--server", e.ts.URL, "--token", readFile(t, e.tokenFile), "station", "list")
		if code != 2 {
			t.Fatalf("a --token flag was accepted: exit %d", code)
		}
	})
	t.Run("environment", func(t *testing.T) {
		t.Setenv("HALLMARK_SERVER", e.ts.URL)
		t.Setenv("HALLMARK_CA_FILE", e.caFile)
		t.Setenv("HALLMARK_TOKEN", strings.TrimSpace(readFile(t, e.tokenFile)))
		t.Setenv("HALLMARK_TOKEN_FILE", "")
		if out := clitest.MustRun(t, nil, "admin", "token", "list"); !strings.Contains(out, "bootstrap") {
			t.Fatalf("token list: %q", out)
		}
		t.Setenv("HALLMARK_TOKEN", "hm_wrongtoken_"+strings.Repeat("A", 43))
		code, _, errOut := clitest.Run(t, nil, "admin", "station", "list")
		wantProblemLine(t, code, errOut, "unauthorized")
	})
}

// hostileText is what a hostile server (or a forged audit entry) would
// have a terminal show: a forged line, screen clearing, a retitled window,
// a right-to-left override, a Unicode line separator, an 8-bit CSI.
const hostileText = "x\n2026-12-02T10:00:00Z  token:admin  device.revoke  ok\r\x1b[2J\x1b]0;pwned\x07\u202eevil\u2028\u009b31m\x7f"

// wantNoTerminalControl fails if out holds a character a terminal would
// act on other than the newline that ends each of lines lines.
func wantNoTerminalControl(t *testing.T, what, out string, lines int) {
	t.Helper()
	for _, r := range out {
		if r != '\n' && r != ' ' && !unicode.IsPrint(r) {
			t.Errorf("%s prints %U: %q", what, r, out)
			return
		}
	}
	if lines >= 0 && strings.Count(out, "\n") != lines {
		t.Errorf("%s prints %d lines, want %d: %q", what, strings.Count(out, "\n"), lines, out)
	}
}

// hostileServer answers every admin route with hostile text in each
// string it can hold, and a problem with hostile text for any POST.
func hostileServer(t *testing.T) *adminEnv {
	t.Helper()
	id := identity.ID{1, 2, 3}
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	device := httpapi.Device{Identity: id, State: hostileText, Algorithm: hostileText, Product: hostileText, Batch: hostileText,
		Station: id, RootOfTrust: hostileText, Injection: hostileText, RevokeReason: hostileText, CreatedAt: now,
		Cloud:        httpapi.Cloud{State: hostileText, LastError: hostileText, Jobs: []httpapi.Job{{ID: 1, Kind: hostileText, Connector: hostileText, State: "pending", Attempts: 2}}},
		Certificates: []httpapi.Certificate{{Serial: hostileText, NotBefore: now, NotAfter: now, IssuedAt: now}}}
	answers := map[string]any{
		"/v1/admin/audit": httpapi.AuditList{Events: []httpapi.AuditEvent{{Seq: 1, Time: now, Actor: hostileText, Action: hostileText,
			Subject: hostileText, Outcome: hostileText, Detail: hostileText, RemoteAddr: hostileText}}},
		"/v1/admin/devices":                httpapi.DeviceList{Devices: []httpapi.Device{device}, Next: hostileText},
		"/v1/admin/devices/" + id.String(): device,
		"/v1/admin/tokens":                 httpapi.TokenList{Tokens: []httpapi.Token{{ID: hostileText, Name: hostileText, Scopes: []string{hostileText}, CreatedAt: now}}},
		"/v1/admin/stations":               httpapi.StationList{Stations: []httpapi.Station{{ID: id, Name: hostileText, Algorithm: hostileText, CreatedAt: now}}},
		"/v1/admin/products":               httpapi.ProductList{Products: []httpapi.Product{{ID: hostileText, Name: hostileText, CertValidity: hostileText, CloudEndpoint: hostileText}}},
	}
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "GET" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(409)
			json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "title": hostileText, "status": 409,
				"detail": hostileText, "code": "conflict" + hostileText})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(answers[r.URL.Path])
	}))
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	dir := t.TempDir()
	e := &adminEnv{ts: ts, dir: dir, caFile: filepath.Join(dir, "ca.pem"), tokenFile: filepath.Join(dir, "admin.token")}
	os.WriteFile(e.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o644)
	secret, _ := admin.NewToken("any", []string{httpapi.ScopeAdmin}, 0)
	os.WriteFile(e.tokenFile, []byte(secret), 0o600)
	return e
}

// TestAdminOutputEscapesServerText: whatever a server answers, what
// hallmark admin prints adds no line and holds no character a terminal
// acts on.
func TestAdminOutputEscapesServerText(t *testing.T) {
	e := hostileServer(t)
	for _, tc := range []struct {
		args  []string
		lines int // on standard output; -1: JSON, any number
	}{
		{[]string{"audit"}, 2},
		{[]string{"audit", "--json"}, -1},
		{[]string{"device", "list"}, 2},
		{[]string{"device", "list", "--json"}, -1},
		{[]string{"device", "get", identity.ID{1, 2, 3}.String()}, 16},
		{[]string{"token", "list"}, 2},
		{[]string{"station", "list"}, 2},
		{[]string{"product", "list"}, 2},
	} {
		code, out, errOut := e.admin(t, nil, tc.args...)
		name := strings.Join(tc.args, " ")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", name, code, errOut)
		}
		wantNoTerminalControl(t, name, out, tc.lines)
		wantNoTerminalControl(t, name+" (stderr)", errOut, -1)
		if tc.lines >= 0 && !strings.Contains(out, `\x1b[2J`) {
			t.Errorf("%s does not show the escape it received: %q", name, out)
		}
		if tc.lines < 0 && !json.Valid([]byte(out)) {
			t.Errorf("%s: not JSON: %q", name, out)
		}
	}
	// The JSON still decodes to what the server sent.
	_, out, _ := e.admin(t, nil, "audit", "--json")
	var list httpapi.AuditList
	if err := json.Unmarshal([]byte(out), &list); err != nil || list.Events[0].Detail != hostileText {
		t.Fatalf("audit --json decodes to %+v, %v", list, err)
	}
	// A problem is one escaped line on standard error.
	code, _, errOut := e.admin(t, nil, "product", "add", "--id", "p", "--name", "P", "--cert-validity", "1h", "--cloud-endpoint", "https://x.example")
	if code != 1 {
		t.Fatalf("problem: exit %d", code)
	}
	wantNoTerminalControl(t, "a problem", errOut, 1)
}

// TestAdminAuditAfterInjection attacks a real server the way the audit
// log was forged: an anonymous request whose path holds a newline, a
// forged entry and escape codes. hallmark admin audit then prints one line
// per event and nothing a terminal acts on.
func TestAdminAuditAfterInjection(t *testing.T) {
	e := newAdminEnv(t)
	roots := x509.NewCertPool()
	roots.AddCert(e.ts.Certificate())
	conn, err := tls.Dial("tcp", e.ts.Listener.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "example.com"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	forged := "/v1/admin/devices/abc%0a2026-12-02T10:00:00Z%20%201%20token:admin%20device.revoke%20ok%1b[2J%1b]0;pwned%07%e2%80%ae"
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: hallmark\r\nConnection: close\r\n\r\n", forged)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("forged request: %d", resp.StatusCode)
	}
	events, err := e.store.ListAudit(context.Background(), store.AuditFilter{})
	if err != nil || len(events) != 2 {
		t.Fatalf("audit: %d events, %v", len(events), err)
	}
	out := e.mustAdmin(t, "audit")
	wantNoTerminalControl(t, "hallmark admin audit", out, 1+len(events))
	if strings.Contains(out, "pwned") {
		t.Fatalf("the forged text reached the output: %q", out)
	}
}
