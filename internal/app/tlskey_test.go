package app

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// servedTLSKey makes a TLS 1.3 handshake with the platform at rawURL,
// trusting rootPEM, and returns the SubjectPublicKeyInfo of the leaf it
// served. An ECDSA P-256 leaf in TLS 1.3 means the server signed its
// CertificateVerify with ecdsa_secp256r1_sha256, the only scheme TLS 1.3
// allows for that key, through whatever signer holds the key.
func servedTLSKey(t *testing.T, rawURL string, rootPEM []byte) []byte {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatal("no root in the CA's PEM")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", u.Host, pki.ClientTLSConfig(roots, nil))
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	defer conn.Close()
	st := conn.ConnectionState()
	if st.Version != tls.VersionTLS13 {
		t.Fatalf("TLS version %x, want 1.3", st.Version)
	}
	leaf := st.PeerCertificates[0]
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("TLS key %T, want ECDSA P-256", leaf.PublicKey)
	}
	return leaf.RawSubjectPublicKeyInfo
}

// TestTLSKeyPersists: the platform's TLS key is pki.KeyTLSServer in the
// CA's key manager, made on first start and served again after a restart,
// while each start issues a new certificate for it.
func TestTLSKeyPersists(t *testing.T) {
	t.Parallel()
	dir := newDataDir(t)
	p := start(t, dir, sigalg.ECDSAP256)
	first := servedTLSKey(t, p.URL(), p.CA.RootPEM())
	rootPEM := p.CA.RootPEM() // the CA is the same across the restart
	p.Close()

	// The key is in the store, as the served one, under its name.
	pass, err := os.ReadFile(filepath.Join(dir, CAPassphraseFile))
	if err != nil {
		t.Fatal(err)
	}
	km, err := keys.Open(context.Background(), DefaultCAKeyURI(dir), keys.Options{Passphrase: []byte(strings.TrimSpace(string(pass)))})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := km.PublicKey(context.Background(), pki.KeyTLSServer)
	km.Close()
	if err != nil {
		t.Fatalf("TLS key not in the CA key store: %v", err)
	}
	spki, err := sigalg.MarshalPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(spki, first) {
		t.Fatal("the served TLS key is not the key store's " + pki.KeyTLSServer)
	}

	again := start(t, dir, sigalg.ECDSAP256)
	if !bytes.Equal(again.CA.RootPEM(), rootPEM) {
		t.Fatal("restart made a new CA")
	}
	if second := servedTLSKey(t, again.URL(), again.CA.RootPEM()); !bytes.Equal(second, first) {
		t.Fatal("restart served another TLS key")
	}
}

// TestTLSKeyOfWrongType: a key named pki.KeyTLSServer that is not ECDSA
// P-256 is refused at start, not replaced.
func TestTLSKeyOfWrongType(t *testing.T) {
	t.Parallel()
	dir := newDataDir(t)
	pass, err := os.ReadFile(filepath.Join(dir, CAPassphraseFile))
	if err != nil {
		t.Fatal(err)
	}
	km, err := keys.Open(context.Background(), DefaultCAKeyURI(dir), keys.Options{Passphrase: []byte(strings.TrimSpace(string(pass)))})
	if err != nil {
		t.Fatal(err)
	}
	_, err = km.CreateKey(context.Background(), keys.CreateKeyRequest{Name: pki.KeyTLSServer, Suite: sigalg.Ed25519})
	km.Close()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Start(context.Background(), Config{DataDir: dir, Listen: "127.0.0.1:0", ServerName: "localhost"})
	if err == nil || !strings.Contains(err.Error(), pki.KeyTLSServer) || !strings.Contains(err.Error(), "ECDSA P-256") {
		t.Fatalf("Start = %v, want a refusal of the Ed25519 %s key", err, pki.KeyTLSServer)
	}
}
