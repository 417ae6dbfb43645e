package pki

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// handshake runs a TLS 1.3 handshake between server and client over an
// in-memory pipe and returns both sides' errors.
func handshake(t *testing.T, server, client *tls.Config) (state tls.ConnectionState, serverErr, clientErr error) {
	t.Helper()
	sc, cc := net.Pipe()
	srv, cli := tls.Server(sc, server), tls.Client(cc, client)
	var wg sync.WaitGroup
	wg.Go(func() {
		serverErr = srv.HandshakeContext(t.Context())
		sc.Close()
	})
	clientErr = cli.HandshakeContext(t.Context())
	state = cli.ConnectionState()
	cc.Close()
	wg.Wait()
	return state, serverErr, clientErr
}

func bundlePool(t *testing.T, bundle []byte) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		t.Fatal("trust bundle has no certificate")
	}
	return pool
}

func bundleDER(bundle []byte) [][]byte {
	var out [][]byte
	for {
		var block *pem.Block
		block, bundle = pem.Decode(bundle)
		if block == nil {
			return out
		}
		out = append(out, block.Bytes)
	}
}

// TestServerCertificateTLS: a Go client that trusts RootPEM connects to a
// server certificate from a CA of each suite, with the hybrid
// post-quantum key exchange.
func TestServerCertificateTLS(t *testing.T) {
	for _, suite := range caSuites {
		t.Run(string(suite), func(t *testing.T) {
			tc := newTestCA(t, suite)
			cert, err := tc.IssueServer(t.Context(), []string{"platform.example", "localhost"}, []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}, 24*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			checkServerProfile(t, tc, cert)
			server := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13, CurvePreferences: []tls.CurveID{tls.X25519MLKEM768}}
			for _, name := range []string{"platform.example", "localhost", "127.0.0.1", "::1"} {
				client := &tls.Config{RootCAs: bundlePool(t, tc.RootPEM()), ServerName: name, Time: fixedClock, MinVersion: tls.VersionTLS13}
				state, serr, cerr := handshake(t, server, client)
				if serr != nil || cerr != nil {
					t.Fatalf("%s: handshake: server %v, client %v", name, serr, cerr)
				}
				if state.CurveID != tls.X25519MLKEM768 {
					t.Errorf("key exchange %v", state.CurveID)
				}
			}
			client := &tls.Config{RootCAs: bundlePool(t, tc.RootPEM()), ServerName: "other.example", Time: fixedClock}
			if _, _, cerr := handshake(t, server, client); cerr == nil {
				t.Error("client accepted the certificate for another name")
			}
			if _, err := VerifyChain(cert.Certificate[0], cert.Certificate[1:], bundleDER(tc.RootPEM()), testNow, x509.ExtKeyUsageServerAuth); err != nil {
				t.Errorf("VerifyChain of the server chain: %v", err)
			}
		})
	}
}

func checkServerProfile(t *testing.T, tc *testCA, cert tls.Certificate) {
	t.Helper()
	leaf := cert.Leaf
	switch {
	case leaf == nil || leaf.PublicKeyAlgorithm != x509.ECDSA || leaf.IsCA:
		t.Fatal("not an ECDSA end-entity certificate")
	case leaf.KeyUsage != x509.KeyUsageDigitalSignature || len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth:
		t.Errorf("usage %b %v", leaf.KeyUsage, leaf.ExtKeyUsage)
	case leaf.Subject.CommonName != "platform.example" || len(leaf.DNSNames) != 2 || len(leaf.IPAddresses) != 2 || len(leaf.URIs) != 0:
		t.Errorf("names %v %v %v", leaf.Subject, leaf.DNSNames, leaf.IPAddresses)
	case !leaf.NotAfter.Equal(testNow.Add(24 * time.Hour)):
		t.Errorf("NotAfter %v", leaf.NotAfter)
	}
	wantChain := 2 // leaf, issuing CA
	if tc.Suite() == sigalg.MLDSA65 {
		wantChain = 1 // the TLS root signs the leaf itself
		if sig := leaf.SignatureAlgorithm; sig != x509.ECDSAWithSHA256 {
			t.Errorf("server certificate under an ML-DSA CA signed with %v", sig)
		}
	}
	if len(cert.Certificate) != wantChain {
		t.Errorf("chain of %d certificates, want %d", len(cert.Certificate), wantChain)
	}
}

func TestIssueServerRefuses(t *testing.T) {
	tc := newTestCA(t, sigalg.ECDSAP256)
	cases := map[string]struct {
		dns []string
		ips []net.IP
		d   time.Duration
	}{
		"no names":      {nil, nil, time.Hour},
		"wildcard":      {[]string{"*.example"}, nil, time.Hour},
		"upper case":    {[]string{"Platform.example"}, nil, time.Hour},
		"empty label":   {[]string{"a..example"}, nil, time.Hour},
		"hyphen edge":   {[]string{"-a.example"}, nil, time.Hour},
		"bad IP":        {nil, []net.IP{{1, 2, 3}}, time.Hour},
		"zero validity": {[]string{"a.example"}, nil, 0},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := tc.IssueServer(t.Context(), c.dns, c.ips, c.d); !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("IssueServer = %v, want ErrInvalidRequest", err)
			}
		})
	}
}

// TestDeviceMutualTLS: a device presents its certificate in TLS and the
// server checks it with VerifyDevice, since crypto/tls cannot verify an
// ML-DSA CA's signatures. ECDSA and Ed25519 device keys work under a CA
// of either suite.
func TestDeviceMutualTLS(t *testing.T) {
	for _, caSuite := range caSuites {
		tc := newTestCA(t, caSuite)
		other := newTestCA(t, caSuite)
		serverCert, err := tc.IssueServer(t.Context(), []string{"platform.example"}, nil, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		for _, devSuite := range []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519} {
			t.Run(string(caSuite)+"/"+string(devSuite), func(t *testing.T) {
				key := deviceKey(t, devSuite, "mtls")
				var got identity.ID
				server := &tls.Config{
					Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS13,
					ClientAuth: tls.RequireAnyClientCert,
					VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
						_, id, err := tc.VerifyDevice(raw, testNow)
						got = id
						return err
					},
				}
				for _, ca := range []*testCA{tc, other} {
					iss := issueDevice(t, ca.CA, key.Public(), "mtls")
					client := &tls.Config{RootCAs: bundlePool(t, tc.RootPEM()), ServerName: "platform.example", Time: fixedClock,
						Certificates: []tls.Certificate{{Certificate: [][]byte{iss.DER, ca.Chain()[0]}, PrivateKey: key}}}
					_, serr, cerr := handshake(t, server, client)
					if ca == tc && (serr != nil || cerr != nil || got != testIdentity("mtls")) {
						t.Fatalf("own device: server %v, client %v, identity %v", serr, cerr, got)
					}
					if ca == other && !errors.Is(serr, ErrUntrusted) {
						t.Fatalf("foreign device: server %v", serr)
					}
				}
			})
		}
	}
}

// TestMLDSADeviceKeyCannotDoTLS pins a limit of Go 1.26's crypto/tls: it
// has no ML-DSA signature scheme, so a device whose operational key is
// ML-DSA cannot authenticate in a TLS handshake. If this test starts to
// fail, crypto/tls has learnt ML-DSA: update docs/pki.md.
func TestMLDSADeviceKeyCannotDoTLS(t *testing.T) {
	tc := newTestCA(t, sigalg.MLDSA65)
	serverCert, err := tc.IssueServer(t.Context(), []string{"platform.example"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key := deviceKey(t, sigalg.MLDSA65, "mtls")
	iss := issueDevice(t, tc.CA, key.Public(), "mtls")
	server := &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAnyClientCert,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			_, _, err := tc.VerifyDevice(raw, testNow)
			return err
		}}
	client := &tls.Config{RootCAs: bundlePool(t, tc.RootPEM()), ServerName: "platform.example", Time: fixedClock,
		Certificates: []tls.Certificate{{Certificate: [][]byte{iss.DER}, PrivateKey: crypto.Signer(key)}}}
	_, serr, cerr := handshake(t, server, client)
	if serr == nil && cerr == nil {
		t.Fatal("an ML-DSA client certificate completed a TLS handshake")
	}
	t.Logf("as expected: server %v; client %v", serr, cerr)
}
