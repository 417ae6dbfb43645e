package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// fixedSerials is a serial source that always yields the same serial.
func fixedSerials() *bytes.Reader {
	return bytes.NewReader(bytes.Repeat([]byte{0xa5}, SerialSize))
}

// goldenHierarchy builds a root and a device certificate from keys derived
// from fixed seeds, at testNow, with a fixed serial: byte for byte the same
// on every run. With an Ed25519 root (deterministic signatures) the whole
// certificates are fixed; with other suites only the TBSCertificates.
func goldenHierarchy(t *testing.T, caSuite, devSuite sigalg.ID) (root, device []byte, deviceTBS []byte) {
	t.Helper()
	caKey := deviceKey(t, caSuite, "golden CA")
	rootDER, err := selfSignedCA(fixedSerials(), caKey, "Hallmark", "Root CA", 1, testNow, defaultRootValidity)
	if err != nil {
		t.Fatal(err)
	}
	req := DeviceRequest{Identity: testIdentity("golden"), PublicKey: deviceKey(t, devSuite, "golden device").Public(), Validity: 365 * 24 * time.Hour}
	tmpl, err := deviceTemplate(fixedSerials(), mustParsed(t, rootDER), "Hallmark", req, testNow)
	if err != nil {
		t.Fatal(err)
	}
	suite, _ := sigalg.SuiteOf(caKey)
	if deviceTBS, err = encodeTBS(tmpl, suite.OID()); err != nil {
		t.Fatal(err)
	}
	if device, err = sign(tmpl, crypto.Signer(caKey)); err != nil {
		t.Fatal(err)
	}
	return rootDER, device, deviceTBS
}

func TestGolden(t *testing.T) {
	cases := []struct {
		caSuite, devSuite sigalg.ID
		whole             bool // deterministic signatures: compare whole certificates
	}{
		{sigalg.Ed25519, sigalg.ECDSAP256, true},
		{sigalg.Ed25519, sigalg.MLDSA44, true},
		{sigalg.ECDSAP256, sigalg.Ed25519, false},
		{sigalg.MLDSA65, sigalg.MLDSA65, false},
	}
	for _, c := range cases {
		name := string(c.caSuite) + "-issues-" + string(c.devSuite)
		t.Run(name, func(t *testing.T) {
			root, device, tbs := goldenHierarchy(t, c.caSuite, c.devSuite)
			if _, err := VerifyChain(device, nil, [][]byte{root}, testNow, x509.ExtKeyUsageClientAuth); err != nil {
				t.Fatalf("golden chain does not verify: %v", err)
			}
			files := map[string][]byte{name + ".tbs.der": tbs}
			if c.whole {
				files[name+".pem"] = append(pemBytes(root), pemBytes(device)...)
			}
			for file, got := range files {
				path := filepath.Join("testdata", "golden", file)
				if *update {
					if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(path, got, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run with -update to create it)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs from the golden file; if the change is intended, review it with openssl asn1parse and run go test -run TestGolden -update", file)
				}
			}
		})
	}
}
