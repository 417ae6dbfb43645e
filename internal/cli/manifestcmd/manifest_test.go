package manifestcmd_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/keys/softkms"
	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// testManifest writes a manifest signed by station with one device of each
// root of trust and injection mode, cycling through the suites; two are
// recorded locked, one open, one partly locked and one without the field
// (as a station wrote before it locked chips).
func testManifest(t *testing.T, station crypto.Signer) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := manifest.NewWriter(&buf, manifest.Header{Batch: "B-0042"}, station)
	if err != nil {
		t.Fatal(err)
	}
	kinds := []struct {
		rot   manifest.RootOfTrust
		inj   manifest.Injection
		locks manifest.Locks
	}{{manifest.PUF, manifest.NotInjected, manifest.LocksClosed}, {manifest.Keygen, manifest.NotInjected, manifest.LocksOpen},
		{manifest.Inject, manifest.Encrypted, manifest.LocksClosed}, {manifest.Inject, manifest.Clear, "debug"},
		{manifest.PUF, manifest.NotInjected, manifest.LocksUnknown}}
	for i, suite := range sigalg.All() {
		key, _ := suite.GenerateKey(rand.Reader)
		id, _ := identity.FromPublicKey(key.Public())
		nonce := make([]byte, 32)
		rand.Read(nonce)
		proof, _ := suite.Sign(key, identity.ProofMessage(identity.FactoryProofContext, nonce, id))
		err := w.Add(context.Background(), manifest.Record{
			Identity: id, Algorithm: suite.ID(), PublicKey: key.Public(),
			RootOfTrust: kinds[i].rot, Injection: kinds[i].inj, Locks: kinds[i].locks, Time: time.Now(), Nonce: nonce, Proof: proof,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func generateKey(t *testing.T, id sigalg.ID) crypto.Signer {
	t.Helper()
	suite, err := id.Suite()
	if err != nil {
		t.Fatal(err)
	}
	key, err := suite.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func writePublicPEM(t *testing.T, dir string, pub crypto.PublicKey) string {
	t.Helper()
	pem, err := sigalg.EncodePublicKeyPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "station.pub")
	os.WriteFile(path, pem, 0o644)
	return path
}

func TestManifestVerify(t *testing.T) {
	dir := t.TempDir()
	station := generateKey(t, sigalg.MLDSA65)
	pubFile := writePublicPEM(t, dir, station.Public())
	data := testManifest(t, station)
	file := filepath.Join(dir, "manifest.jsonl")
	os.WriteFile(file, data, 0o644)

	out := clitest.MustRun(t, nil, "manifest", "verify", "--station", pubFile, "--in", file)
	stationID, _ := identity.FromPublicKey(station.Public())
	for _, want := range []string{
		"manifest verified: station signature and 5 device proofs valid",
		"batch:          B-0042\n", "station:        " + stationID.String() + " (ml-dsa-65)\n", "devices:        5\n",
		"root of trust:  puf 2, keygen 1, inject 2 (encrypted 1, clear 1)\n",
		"algorithms:     ecdsa-p256 1, ed25519 1, ml-dsa-44 1, ml-dsa-65 1, ml-dsa-87 1\n",
		"locks:          2 locked, 3 left open\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}
	// From standard input too.
	if got := clitest.MustRun(t, data, "manifest", "verify", "--station", pubFile); got != out {
		t.Errorf("verify from standard input printed\n%s\nnot\n%s", got, out)
	}
}

// TestManifestVerifyWithKeyStore is the station's path end to end: the key
// is created in the key store by the CLI, the manifest is signed through
// the store's signer, and the CLI verifies it with the exported public key.
func TestManifestVerifyWithKeyStore(t *testing.T) {
	dir, passFile := clitest.NewKeyStore(t)
	pubFile := filepath.Join(t.TempDir(), "station.pub")
	clitest.MustRun(t, nil, "station", "key", "create", "--keystore", dir, "--passphrase-file", passFile, "--pub-out", pubFile)
	store, err := softkms.Open(context.Background(), dir, []byte(clitest.KeyStorePassphrase))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var signer crypto.Signer
	signer, err = store.Signer(context.Background(), "station")
	if err != nil {
		t.Fatal(err)
	}
	data := testManifest(t, signer)
	out := clitest.MustRun(t, data, "manifest", "verify", "--station", pubFile)
	if !strings.HasPrefix(out, "manifest verified") {
		t.Fatalf("verify: %q", out)
	}
}

func TestManifestVerifyFailures(t *testing.T) {
	dir := t.TempDir()
	station := generateKey(t, sigalg.Ed25519)
	other := generateKey(t, sigalg.Ed25519)
	pubFile := writePublicPEM(t, dir, station.Public())
	otherFile := filepath.Join(dir, "other.pub")
	otherPEM, _ := sigalg.EncodePublicKeyPEM(other.Public())
	os.WriteFile(otherFile, otherPEM, 0o644)
	data := testManifest(t, station)
	tampered := bytes.Replace(data, []byte(`"injection":"clear"`), []byte(`"injection":"encrypted"`), 1)
	truncated := data[:len(data)-10]
	for _, tc := range []struct {
		name  string
		stdin []byte
		args  []string
		code  int
		want  string
	}{
		{"tampered", tampered, []string{"--station", pubFile}, 1, "manifest signature invalid"},
		{"truncated", truncated, []string{"--station", pubFile}, 1, "truncated"},
		{"another station", data, []string{"--station", otherFile}, 1, "manifest from another station"},
		{"empty", nil, []string{"--station", pubFile}, 1, "malformed manifest"},
		{"no station", data, nil, 2, "--station FILE"},
		{"two stdins", data, []string{"--station", "-"}, 2, "cannot both be standard input"},
		{"missing file", nil, []string{"--station", pubFile, "--in", filepath.Join(dir, "nope")}, 1, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := clitest.Run(t, tc.stdin, append([]string{"manifest", "verify"}, tc.args...)...)
			if code != tc.code || out != "" {
				t.Errorf("exit %d, stdout %q; want exit %d and no output", code, out, tc.code)
			}
			if strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "hallmark: ") || !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr %q, want one line containing %q", errOut, tc.want)
			}
		})
	}
}

func TestManifestInspect(t *testing.T) {
	station := generateKey(t, sigalg.Ed25519)
	data := testManifest(t, station)

	out := clitest.MustRun(t, data, "manifest", "inspect", "--records", "5")
	head, table, ok := strings.Cut(out, "first 5 records:\n")
	if !ok || !strings.HasPrefix(head, "NOT VERIFIED") || !strings.Contains(head, "devices:        5\n") ||
		!strings.Contains(head, "locks:          2 locked, 3 left open\n") {
		t.Fatalf("inspect output:\n%s", out)
	}
	rows := strings.Split(strings.TrimSpace(table), "\n")
	if len(rows) != 6 || !strings.HasPrefix(rows[0], "SEQ") || !strings.HasPrefix(rows[2], "2 ") {
		t.Fatalf("inspect record table, want a heading and 5 rows:\n%s", table)
	}
	// Each record's lock state, in the LOCKS column.
	col := strings.Index(rows[0], "LOCKS")
	for i, want := range []string{"locked", "open", "locked", "debug", "unknown"} {
		if col < 0 || len(rows[i+1]) <= col || strings.Fields(rows[i+1][col:])[0] != want {
			t.Errorf("record %d: LOCKS column is not %q:\n%s", i+1, want, table)
		}
	}
	if short := clitest.MustRun(t, data, "manifest", "inspect", "--records", "2"); !strings.Contains(short, "first 2 records:\n") ||
		!strings.Contains(short, "locks:          2 locked, 3 left open\n") {
		t.Errorf("the lock summary covers the whole manifest, not the records shown:\n%s", short)
	}

	js := clitest.MustRun(t, data, "manifest", "inspect", "--json", "--records", "10")
	var doc struct {
		Verified bool
		Header   struct{ Batch, Station string }
		Count    int
		Locked   int
		LeftOpen int `json:"left_open"`
		Records  []struct {
			Seq      int
			Identity string
			Locks    *string
		}
	}
	if err := json.Unmarshal([]byte(js), &doc); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, js)
	}
	stationID, _ := identity.FromPublicKey(station.Public())
	if doc.Verified || doc.Header.Batch != "B-0042" || doc.Header.Station != stationID.String() || doc.Count != 5 || len(doc.Records) != 5 || doc.Records[4].Seq != 5 {
		t.Fatalf("--json: %+v", doc)
	}
	if doc.Locked != 2 || doc.LeftOpen != 3 {
		t.Errorf("--json: locked %d, left_open %d; want 2 and 3", doc.Locked, doc.LeftOpen)
	}
	// The records are the manifest's own lines: "locks" as the station
	// wrote it, absent where it wrote none.
	for i, want := range []string{string(manifest.LocksClosed), "open", string(manifest.LocksClosed), "debug", ""} {
		got := ""
		if l := doc.Records[i].Locks; l != nil {
			got = *l
		}
		if got != want {
			t.Errorf("--json record %d: locks %q, want %q", i+1, got, want)
		}
	}

	// Inspect does not need the station key, but still refuses a broken file.
	code, _, errOut := clitest.Run(t, data[:len(data)/2], "manifest", "inspect")
	if code != 1 || !strings.Contains(errOut, "malformed manifest") {
		t.Fatalf("inspect of half a manifest: exit %d, %q", code, errOut)
	}
	if code, _, _ := clitest.Run(t, data, "manifest", "inspect", "--records", "-1"); code != 2 {
		t.Fatalf("--records -1: exit %d, want 2", code)
	}
}
