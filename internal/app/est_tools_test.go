package app

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// estNeedTool fails the test unless name is installed, naming its package.
func estNeedTool(t *testing.T, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is not installed: install the Debian package %s", name, pkg)
	}
}

// estRun runs a shell command in dir and returns its standard output.
func estRun(t *testing.T, dir, cmd string) string {
	t.Helper()
	c := exec.Command("sh", "-c", cmd)
	c.Dir = dir
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		t.Fatalf("%s: %v: %s", cmd, err, errb.String())
	}
	return out.String()
}

// estSClientPost sends a base64 PKCS #10 request made by makeCSR to path over
// one `openssl s_client` connection authenticated by certFile (and
// chainFile, if any) and keyFile. makeCSR receives the base64 of the
// connection's tls-exporter value, which s_client prints
// (-keymatexport), as an EST client binds its request (RFC 7030 §3.5).
func estSClientPost(t *testing.T, dir, host, path, certFile, keyFile, chainFile string, makeCSR func(binding string) []byte) (int, []byte) {
	t.Helper()
	args := []string{"s_client", "-connect", host, "-servername", "localhost", "-CAfile", "root.pem", "-verify_return_error",
		"-tls1_3", "-cert", certFile, "-key", keyFile, "-keymatexport", "EXPORTER-Channel-Binding", "-keymatexportlen", "32",
		"-ign_eof", "-nocommands"}
	if chainFile != "" {
		args = append(args, "-cert_chain", chainFile)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "openssl", args...)
	cmd.Dir = dir
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	var ekm []byte
	for ekm == nil {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("s_client printed no keying material: %v: %s", err, stderr.String())
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Keying material: "); ok {
			if ekm, err = hex.DecodeString(v); err != nil {
				t.Fatal(err)
			}
		}
	}
	body := makeCSR(base64.StdEncoding.EncodeToString(ekm))
	fmt.Fprintf(stdin, "POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/pkcs10\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", path, len(body))
	stdin.Write(body)
	rest, _ := io.ReadAll(r)
	stdin.Close()
	cmd.Wait()
	i := bytes.Index(rest, []byte("HTTP/1.1 "))
	if i < 0 {
		t.Fatalf("no HTTP answer from s_client: %s %s", rest, stderr.String())
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(rest[i:])), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestESTWithOpenSSLAndCurl enrols and re-enrols a device whose keys,
// certificate and requests OpenSSL makes, the way RFC 7030's examples
// do, and checks the issued chains with openssl verify.
func TestESTWithOpenSSLAndCurl(t *testing.T) {
	estNeedTool(t, "openssl", "openssl")
	estNeedTool(t, "curl", "curl")
	t.Parallel()
	p, err := Start(context.Background(), Config{DataDir: newDataDir(t), Listen: "127.0.0.1:0", ServerName: "localhost", CASuite: sigalg.ECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	dir := t.TempDir()
	u, _ := url.Parse(p.URL())
	base := p.URL() + "/.well-known/est"
	if err := os.WriteFile(filepath.Join(dir, "root.pem"), p.CA.RootPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	// The device's enrolment key and its self-signed certificate.
	estRun(t, dir, "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout enrol.key -out enrol.pem -subj /CN=enrolment -days 1 2>/dev/null")
	keyPEM, _ := os.ReadFile(filepath.Join(dir, "enrol.key"))
	block, _ := pem.Decode(keyPEM)
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	dev := estFleet(t, p, key.(crypto.Signer))[0] // the station's manifest registers it
	certPEM, _ := os.ReadFile(filepath.Join(dir, "enrol.pem"))
	block, _ = pem.Decode(certPEM)
	cert, _ := x509.ParseCertificate(block.Bytes)
	if identity.FromSPKI(cert.RawSubjectPublicKeyInfo) != dev.id {
		t.Fatal("the OpenSSL certificate's key is not the registered identity")
	}

	// cacerts with curl, read by openssl pkcs7.
	estRun(t, dir, "curl -sS --fail --cacert root.pem -o cacerts.b64 "+base+"/cacerts")
	if out := estRun(t, dir, "openssl base64 -d -in cacerts.b64 | openssl pkcs7 -inform DER -print_certs"); strings.Count(out, "BEGIN CERTIFICATE") < 2 {
		t.Fatalf("cacerts: %s", out)
	}

	// A request for a new operational key made by openssl req, bound to
	// the s_client connection that carries it.
	csrFor := func(keyFile string) func(binding string) []byte {
		return func(binding string) []byte {
			cnf := fmt.Sprintf("[req]\nprompt = no\ndistinguished_name = dn\nattributes = attrs\n[dn]\nCN = %s\n[attrs]\nchallengePassword = %s\n", dev.id, binding)
			if err := os.WriteFile(filepath.Join(dir, "req.cnf"), []byte(cnf), 0o600); err != nil {
				t.Fatal(err)
			}
			estRun(t, dir, "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "+keyFile+" -config req.cnf -outform DER -out req.der 2>/dev/null && openssl base64 -in req.der -out req.b64")
			b, _ := os.ReadFile(filepath.Join(dir, "req.b64"))
			return b
		}
	}
	verifyChain := func(body []byte, prefix string) {
		if err := os.WriteFile(filepath.Join(dir, prefix+".b64"), body, 0o600); err != nil {
			t.Fatal(err)
		}
		out := estRun(t, dir, "openssl base64 -d -in "+prefix+".b64 | openssl pkcs7 -inform DER -print_certs")
		var pems []string
		for rest := []byte(out); ; {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			pems = append(pems, string(pem.EncodeToMemory(b)))
		}
		if len(pems) != 2 {
			t.Fatalf("%s: %d certificates in the answer, want the leaf and its CA", prefix, len(pems))
		}
		os.WriteFile(filepath.Join(dir, prefix+"-leaf.pem"), []byte(pems[0]), 0o600)
		os.WriteFile(filepath.Join(dir, prefix+"-ca.pem"), []byte(pems[1]), 0o600)
		if out := estRun(t, dir, "openssl verify -CAfile root.pem -untrusted "+prefix+"-ca.pem "+prefix+"-leaf.pem"); !strings.Contains(out, ": OK") {
			t.Fatalf("openssl verify: %s", out)
		}
		if out := estRun(t, dir, "openssl x509 -in "+prefix+"-leaf.pem -noout -subject"); !strings.Contains(out, dev.id.String()) {
			t.Fatalf("the leaf does not name the identity: %s", out)
		}
	}

	status, body := estSClientPost(t, dir, u.Host, "/.well-known/est/simpleenroll", "enrol.pem", "enrol.key", "", csrFor("op.key"))
	if status != http.StatusOK {
		t.Fatalf("simpleenroll over s_client: %d %s", status, body)
	}
	verifyChain(body, "enrolled")

	// curl sends that request again on its own connection: bound to
	// another session, refused.
	out := estRun(t, dir, "curl -sS --cacert root.pem --cert enrol.pem --key enrol.key -H 'Content-Type: application/pkcs10' --data-binary @req.b64 -w ' %{http_code}' "+base+"/simpleenroll")
	if !strings.Contains(out, "bound to another exchange") || !strings.HasSuffix(out, " 400") {
		t.Fatalf("replayed request: %s", out)
	}
	if n, _ := estCertificatesOf(t, p, dev.id); n != 1 {
		t.Fatalf("%d certificates after the replay", n)
	}

	// Re-enrolment over mutual TLS with the issued certificate.
	status, body = estSClientPost(t, dir, u.Host, "/.well-known/est/simplereenroll", "enrolled-leaf.pem", "op.key", "enrolled-ca.pem", csrFor("op2.key"))
	if status != http.StatusOK {
		t.Fatalf("simplereenroll over s_client: %d %s", status, body)
	}
	verifyChain(body, "reenrolled")
	if n, _ := estCertificatesOf(t, p, dev.id); n != 2 {
		t.Fatalf("%d certificates after re-enrolment", n)
	}
}
