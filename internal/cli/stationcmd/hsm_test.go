package stationcmd_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
	"github.com/hallmark-iot/hallmark/internal/keys/pkcs11kms/softhsmtest"
)

// TestStationWithHSM runs a station whose manifest key and inject-class
// device keys live in a SoftHSM2 token: the manifest key is made in the
// token, device keys are generated there and leave it only wrapped to each
// chip's P-256 transport key, and every chip unwraps its key, boots and
// proves its identity to the station (which verifies each proof before it
// signs the record). A chip whose channel is X-Wing cannot be served by
// the token without the key leaving it in the clear, so it is refused.
func TestStationWithHSM(t *testing.T) {
	f := newFactoryFiles(t)
	tok := softhsmtest.New(t)
	pub := filepath.Join(f.dir, "station-hsm.pub")

	// The token has no ML-DSA: the error names the missing mechanism.
	code, _, errOut := clitest.Run(t, nil, "station", "key", "create", "--keystore", tok.URI, "--alg", "ml-dsa-65")
	if code == 0 || !strings.Contains(errOut, "CKM_ML_DSA") || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("ml-dsa station key in SoftHSM2: exit %d, %q; want one line naming CKM_ML_DSA", code, errOut)
	}
	if strings.Contains(errOut, tok.PIN) {
		t.Fatal("the error shows the PIN")
	}
	clitest.MustRun(t, nil, "station", "key", "create", "--keystore", tok.URI, "--alg", "ecdsa-p256", "--pub-out", pub)

	batch := filepath.Join(f.dir, "batch-hsm")
	args := []string{"station", "run", "--dir", batch, "--count", "6", "--ief", f.ief,
		"--root", f.vendorPub, "--root", f.vendorPQPub, "--keystore", tok.URI,
		"--classes", "inject:p256-ecdh", "--algs", "ecdsa-p256"}
	out := clitest.MustRun(t, nil, args...)
	if !strings.Contains(out, "6 enrolled, 0 rejected") {
		t.Fatalf("station output:\n%s", out)
	}
	manifest := filepath.Join(batch, "manifest.jsonl")
	if out := clitest.MustRun(t, nil, "manifest", "verify", "--station", pub, "--in", manifest); !strings.Contains(out, "6") {
		t.Fatalf("manifest verify:\n%s", out)
	}
	data, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), `"injection":"encrypted"`); n != 6 {
		t.Fatalf("%d records say the key was injected encrypted, want 6:\n%s", n, data)
	}

	// X-Wing chips: refused, one clear reason, nothing enrolled.
	xbatch := filepath.Join(f.dir, "batch-xwing")
	xargs := append([]string(nil), args...)
	xargs[3] = xbatch
	for i, a := range xargs {
		if a == "inject:p256-ecdh" {
			xargs[i] = "inject:x-wing"
		}
	}
	code, stdout, errOut := clitest.Run(t, nil, xargs...)
	if code == 0 || !strings.Contains(errOut, "cannot wrap to this chip's transport key") || !strings.Contains(errOut, "P-256 ECDH") {
		t.Fatalf("an X-Wing chip with the token: exit %d\n%s%s", code, stdout, errOut)
	}
	if strings.Contains(errOut, tok.PIN) {
		t.Fatal("the error shows the PIN")
	}
}
