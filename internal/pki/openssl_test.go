package pki

import (
	"bytes"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// These tests check the builder's classical output with OpenSSL (3.0 or
// later), an implementation independent of crypto/x509. OpenSSL 3.0 has
// no ML-DSA; for ML-DSA certificates it only checks the DER structure.

func requireOpenSSL(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatalf("openssl not found (%v): install the Debian package openssl", err)
	}
}

// runOpenSSL runs openssl in dir and returns its combined output.
func runOpenSSL(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "openssl", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func writeFiles(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var attime = strconv.FormatInt(testNow.Unix(), 10)

func TestOpenSSLVerifiesDeviceChains(t *testing.T) {
	requireOpenSSL(t)
	for _, caSuite := range []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519} {
		tc := newTestCA(t, caSuite)
		for _, devSuite := range []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519} {
			t.Run(string(caSuite)+"/"+string(devSuite), func(t *testing.T) {
				leaf := issueDevice(t, tc.CA, deviceKey(t, devSuite, "openssl").Public(), "openssl").DER
				tampered := bytes.Clone(leaf)
				tampered[len(tampered)-3] ^= 1
				dir := writeFiles(t, map[string][]byte{
					"root.pem": pemBytes(tc.Chain()[1]), "issuing.pem": pemBytes(tc.Chain()[0]),
					"leaf.pem": pemBytes(leaf), "tampered.pem": pemBytes(tampered),
				})
				verify := func(purpose, file string) (string, error) {
					return runOpenSSL(t, dir, "verify", "-x509_strict", "-attime", attime, "-purpose", purpose,
						"-CAfile", "root.pem", "-untrusted", "issuing.pem", file)
				}
				if out, err := verify("sslclient", "leaf.pem"); err != nil || !strings.Contains(out, "leaf.pem: OK") {
					t.Fatalf("openssl verify: %v\n%s", err, out)
				}
				if out, err := verify("sslserver", "leaf.pem"); err == nil {
					t.Errorf("openssl accepts a device certificate for a TLS server:\n%s", out)
				}
				if out, err := verify("sslclient", "tampered.pem"); err == nil {
					t.Errorf("openssl accepts a tampered certificate:\n%s", out)
				}
			})
		}
	}
}

func TestOpenSSLVerifiesServerChains(t *testing.T) {
	requireOpenSSL(t)
	for _, caSuite := range caSuites {
		t.Run(string(caSuite), func(t *testing.T) {
			tc := newTestCA(t, caSuite)
			cert, err := tc.IssueServer(t.Context(), []string{"platform.example"}, []net.IP{net.ParseIP("127.0.0.1")}, 24*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			var untrusted []byte
			for _, der := range cert.Certificate[1:] {
				untrusted = append(untrusted, pemBytes(der)...)
			}
			files := map[string][]byte{"bundle.pem": tc.RootPEM(), "server.pem": pemBytes(cert.Certificate[0])}
			args := []string{"verify", "-x509_strict", "-attime", attime, "-purpose", "sslserver", "-CAfile", "bundle.pem"}
			if untrusted != nil {
				files["untrusted.pem"] = untrusted
				args = append(args, "-untrusted", "untrusted.pem")
			}
			dir := writeFiles(t, files)
			for _, check := range [][]string{{"-verify_hostname", "platform.example"}, {"-verify_ip", "127.0.0.1"}} {
				out, err := runOpenSSL(t, dir, append(append(args, check...), "server.pem")...)
				if err != nil || !strings.Contains(out, "server.pem: OK") {
					t.Fatalf("openssl verify %v: %v\n%s", check, err, out)
				}
			}
			if out, err := runOpenSSL(t, dir, append(args, "-verify_hostname", "other.example", "server.pem")...); err == nil {
				t.Errorf("openssl accepts the certificate for another name:\n%s", out)
			}
		})
	}
}

func TestOpenSSLCSRs(t *testing.T) {
	requireOpenSSL(t)
	for _, s := range []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519} {
		t.Run("ours/"+string(s), func(t *testing.T) {
			der, err := CreateCSR(deviceKey(t, s, "openssl-csr"), "device-1")
			if err != nil {
				t.Fatal(err)
			}
			dir := writeFiles(t, map[string][]byte{"csr.der": der})
			out, err := runOpenSSL(t, dir, "req", "-inform", "DER", "-in", "csr.der", "-verify", "-noout", "-subject")
			if err != nil || !strings.Contains(out, "verify OK") || !strings.Contains(out, "CN = device-1") {
				t.Fatalf("openssl req -verify: %v\n%s", err, out)
			}
		})
	}
	for name, genpkey := range map[string][]string{
		"ecdsa-p256": {"-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"},
		"ed25519":    {"-algorithm", "ED25519"},
	} {
		t.Run("openssl/"+name, func(t *testing.T) {
			dir := t.TempDir()
			steps := [][]string{
				append(append([]string{"genpkey"}, genpkey...), "-out", "key.pem"),
				{"req", "-new", "-key", "key.pem", "-subj", "/O=Acme/CN=from-openssl", "-outform", "DER", "-out", "csr.der"},
				{"pkey", "-in", "key.pem", "-pubout", "-outform", "DER", "-out", "pub.der"},
			}
			for _, step := range steps {
				if out, err := runOpenSSL(t, dir, step...); err != nil {
					t.Fatalf("openssl %v: %v\n%s", step, err, out)
				}
			}
			der, _ := os.ReadFile(filepath.Join(dir, "csr.der"))
			pub, _ := os.ReadFile(filepath.Join(dir, "pub.der"))
			csr, err := ParseCSR(der)
			if err != nil {
				t.Fatalf("ParseCSR of an OpenSSL request: %v", err)
			}
			if string(csr.Suite) != name || !bytes.Equal(csr.SPKI, pub) || csr.Subject.CommonName != "from-openssl" {
				t.Errorf("suite %s, CN %q, key matches: %v", csr.Suite, csr.Subject.CommonName, bytes.Equal(csr.SPKI, pub))
			}
		})
	}
}

// TestOpenSSLParsesMLDSA: OpenSSL 3.0 cannot verify ML-DSA but its DER
// parser reads the certificates and requests, and names the RFC 9881 OIDs.
func TestOpenSSLParsesMLDSA(t *testing.T) {
	requireOpenSSL(t)
	tc := newTestCA(t, sigalg.MLDSA65)
	leaf := issueDevice(t, tc.CA, deviceKey(t, sigalg.MLDSA87, "asn1").Public(), "asn1").DER
	csr, err := CreateCSR(deviceKey(t, sigalg.MLDSA44, "asn1"), "device")
	if err != nil {
		t.Fatal(err)
	}
	dir := writeFiles(t, map[string][]byte{"leaf.der": leaf, "root.der": tc.Chain()[1], "csr.der": csr})
	for file, oids := range map[string][]string{
		"leaf.der": {"2.16.840.1.101.3.4.3.18", "2.16.840.1.101.3.4.3.19"},
		"root.der": {"2.16.840.1.101.3.4.3.18"},
		"csr.der":  {"2.16.840.1.101.3.4.3.17"},
	} {
		out, err := runOpenSSL(t, dir, "asn1parse", "-inform", "DER", "-in", file)
		if err != nil {
			t.Fatalf("openssl asn1parse %s: %v\n%s", file, err, out)
		}
		for _, oid := range oids {
			if !strings.Contains(out, ":"+oid) {
				t.Errorf("%s: OID %s not found:\n%s", file, oid, out)
			}
		}
	}
	if block, _ := pem.Decode(tc.RootPEM()); block == nil {
		t.Fatal("trust bundle is not PEM")
	}
}
