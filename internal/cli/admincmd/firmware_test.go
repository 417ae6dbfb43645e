package admincmd_test

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/firmwarerepo"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store/sqlite"
)

// newFirmwareAdminEnv is newAdminEnv with the firmware repository mounted.
func newFirmwareAdminEnv(t *testing.T) *adminEnv {
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
	blobs, err := firmwarerepo.OpenBlobs(firmwarerepo.BlobDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	repo, err := firmwarerepo.New(firmwarerepo.Config{Store: st, Blobs: blobs, Audit: st})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.HandleFirmware(repo, nil); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv)
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	e := &adminEnv{ts: ts, store: st, dir: dir, caFile: filepath.Join(dir, "ca.pem"), tokenFile: filepath.Join(dir, "admin.token")}
	os.WriteFile(e.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o644)
	if _, err := svc.Tokens.EnsureBootstrapToken(ctx, e.tokenFile); err != nil {
		t.Fatal(err)
	}
	return e
}

func writeImage(t *testing.T, path string, class *sealing.PublicKey, keys ...crypto.Signer) string {
	t.Helper()
	img, err := firmware.New(firmware.Metadata{Type: firmware.TypeApplication, Version: firmware.Version{Major: 3, Minor: 1}, SecurityCounter: 9},
		[]byte("lamp application"))
	if err != nil {
		t.Fatal(err)
	}
	if class != nil {
		if err := img.Encrypt(class); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range keys {
		if err := img.Sign(k); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := img.MarshalBinary()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256(data)
	return hex.EncodeToString(d[:])
}

// TestFirmwareCommands: a product's firmware policy is set from key
// files and hex digests, an image the policy accepts is uploaded (twice,
// to the same record), listed and described, and one it refuses is one
// problem line.
func TestFirmwareCommands(t *testing.T) {
	e := newFirmwareAdminEnv(t)
	ec, pq := deriveTestKey(t, sigalg.ECDSAP256, "fw-ec", 1), deriveTestKey(t, sigalg.MLDSA65, "fw-pq", 1)
	ecPEM, _ := sigalg.EncodePublicKeyPEM(ec.Public())
	ecFile := filepath.Join(e.dir, "vendor.pub")
	os.WriteFile(ecFile, ecPEM, 0o644)
	pqID, _ := identity.FromPublicKey(pq.Public())
	class, err := sealing.GenerateKey(sealing.X25519)
	if err != nil {
		t.Fatal(err)
	}
	classFile := filepath.Join(e.dir, "class.pub")
	os.WriteFile(classFile, sealing.EncodePublicKeyPEM(class.Public()), 0o644)

	e.mustAdmin(t, "product", "add", "--id", "lamp", "--name", "Lamp", "--cert-validity", "720h",
		"--cloud-endpoint", "mqtts://b.example.com:8883", "--firmware-root", ecFile, "--firmware-root", pqID.String(), "--class-key", classFile)
	p, err := e.store.GetProduct(context.Background(), "lamp")
	if err != nil {
		t.Fatal(err)
	}
	ecID, _ := identity.FromPublicKey(ec.Public())
	if len(p.Firmware.Roots) != 2 || p.Firmware.Roots[0] != [32]byte(ecID) || p.Firmware.Roots[1] != [32]byte(pqID) ||
		p.Firmware.ClassKey != class.Public().Fingerprint() {
		t.Fatalf("policy %+v", p.Firmware)
	}

	good := filepath.Join(e.dir, "app.hmfw")
	digest := writeImage(t, good, class.Public(), ec, pq)
	out := e.mustAdmin(t, "firmware", "upload", "--product", "lamp", good)
	if !strings.HasPrefix(out, "firmware "+digest+" for product lamp: app 3.1.0, security counter 9,") || !strings.Contains(out, "encrypted") {
		t.Errorf("upload: %q", out)
	}
	if again := e.mustAdmin(t, "firmware", "upload", "--product", "lamp", good); again != out {
		t.Errorf("second upload %q, first %q", again, out)
	}
	if out := e.mustAdmin(t, "firmware", "list", "--product", "lamp"); !strings.Contains(out, digest) || !strings.Contains(out, "3.1.0") {
		t.Errorf("list: %q", out)
	}
	var page httpapi.FirmwareList
	if err := json.Unmarshal([]byte(e.mustAdmin(t, "firmware", "list", "--json")), &page); err != nil || len(page.Images) != 1 {
		t.Errorf("list --json: %+v, %v", page, err)
	}
	if out := e.mustAdmin(t, "firmware", "get", digest); !strings.Contains(out, "signer 2") || !strings.Contains(out, pqID.String()) {
		t.Errorf("get: %q", out)
	}

	half := filepath.Join(e.dir, "half.hmfw")
	writeImage(t, half, nil, ec)
	code, _, errOut := e.admin(t, nil, "firmware", "upload", "--product", "lamp", half)
	wantProblemLine(t, code, errOut, firmwarerepo.CodeHybridIncomplete)
	// Retiring the classical slot makes the post-quantum signature enough.
	if out := e.mustAdmin(t, "product", "update", "lamp", "--retired-slot", "0"); !strings.HasSuffix(out,
		"firmware policy: 2 roots, retired slots 0, class key "+hex.EncodeToString(p.Firmware.ClassKey[:])+"\n") {
		t.Errorf("update of the retired slots: %q", out)
	}
	pqOnly := filepath.Join(e.dir, "pq.hmfw")
	writeImage(t, pqOnly, nil, pq)
	e.mustAdmin(t, "firmware", "upload", "--product", "lamp", pqOnly)
	code, _, errOut = e.admin(t, nil, "firmware", "upload", "--product", "lamp", half)
	wantProblemLine(t, code, errOut, firmwarerepo.CodeRetiredRoot)
	code, _, errOut = e.admin(t, nil, "product", "update", "lamp", "--retired-slot", "0", "--retired-slot", "1")
	wantProblemLine(t, code, errOut, "malformed-request")
	if code, _, _ := e.admin(t, nil, "firmware", "upload", good); code == 0 {
		t.Error("upload without --product succeeded")
	}
	code, _, errOut = e.admin(t, nil, "firmware", "get", strings.Repeat("0", 64))
	wantProblemLine(t, code, errOut, "not-found")
}
