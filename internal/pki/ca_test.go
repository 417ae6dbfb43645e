package pki

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

func TestOpenCreatesHierarchy(t *testing.T) {
	for _, suite := range caSuites {
		t.Run(string(suite), func(t *testing.T) {
			tc := newTestCA(t, suite)
			if tc.Suite() != suite {
				t.Fatalf("Suite() = %s", tc.Suite())
			}
			chain := tc.Chain()
			root, issuing := mustParse(t, chain[1]), mustParse(t, chain[0])
			checkCAProfile(t, root, 1, "Hallmark Root CA")
			checkCAProfile(t, issuing, 0, "Hallmark Issuing CA")
			if !bytes.Equal(root.RawIssuer, root.RawSubject) || len(root.AuthorityKeyId) != 0 {
				t.Error("root is not self-issued without an authority key identifier")
			}
			if !bytes.Equal(issuing.RawIssuer, root.RawSubject) || !bytes.Equal(issuing.AuthorityKeyId, root.SubjectKeyId) {
				t.Error("issuing CA does not name the root as issuer")
			}
			if !root.NotBefore.Equal(testNow.Add(-ClockSkew)) || !root.NotAfter.Equal(testNow.Add(defaultRootValidity)) {
				t.Errorf("root validity %v – %v", root.NotBefore, root.NotAfter)
			}
			if !issuing.NotAfter.Equal(testNow.Add(defaultIssuingValidity)) {
				t.Errorf("issuing NotAfter %v", issuing.NotAfter)
			}
			for name, key := range map[string]*x509.Certificate{KeyRoot: root, KeyIssuing: issuing} {
				pub, err := tc.km.PublicKey(context.Background(), name)
				if err != nil {
					t.Fatal(err)
				}
				spki, _ := sigalg.MarshalPublicKey(pub)
				if !bytes.Equal(spki, key.RawSubjectPublicKeyInfo) {
					t.Errorf("certificate does not hold key %s", name)
				}
			}
			if _, err := VerifyChain(chain[0], nil, chain[1:], testNow, x509.ExtKeyUsageAny); err != nil {
				t.Errorf("issuing CA does not verify under the root: %v", err)
			}
			onDisk, err := os.ReadFile(filepath.Join(tc.dir, FileRoot))
			if err != nil || !bytes.HasPrefix(tc.RootPEM(), onDisk) {
				t.Errorf("RootPEM does not start with %s: %v", FileRoot, err)
			}
			wantBundle := 1
			if suite == sigalg.MLDSA65 {
				wantBundle = 2
			}
			if n := countPEM(tc.RootPEM()); n != wantBundle {
				t.Errorf("trust bundle has %d certificates, want %d", n, wantBundle)
			}
		})
	}
}

func checkCAProfile(t *testing.T, c *x509.Certificate, pathLen int, cn string) {
	t.Helper()
	switch {
	case c.Version != 3 || !c.BasicConstraintsValid || !c.IsCA:
		t.Errorf("%s: not a v3 CA", cn)
	case c.MaxPathLen != pathLen || (pathLen == 0 && !c.MaxPathLenZero):
		t.Errorf("%s: pathLen %d, want %d", cn, c.MaxPathLen, pathLen)
	case c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign:
		t.Errorf("%s: key usage %b", cn, c.KeyUsage)
	case len(c.SubjectKeyId) != 20:
		t.Errorf("%s: subject key identifier of %d bytes", cn, len(c.SubjectKeyId))
	case c.Subject.CommonName != cn || len(c.Subject.Organization) != 1 || c.Subject.Organization[0] != "Hallmark":
		t.Errorf("subject %v, want CN=%s, O=Hallmark", c.Subject, cn)
	case len(c.ExtKeyUsage) != 0 || len(c.DNSNames)+len(c.URIs) != 0:
		t.Errorf("%s: unexpected EKU or SAN", cn)
	}
	for _, e := range c.Extensions {
		if e.Id.Equal(oidBasicConstraints) || e.Id.Equal(oidKeyUsage) {
			if !e.Critical {
				t.Errorf("%s: extension %s not critical", cn, e.Id)
			}
		}
	}
}

func countPEM(data []byte) int {
	n := 0
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return n
		}
		n++
	}
}

func TestReopenLoadsSameCertificates(t *testing.T) {
	for _, suite := range caSuites {
		t.Run(string(suite), func(t *testing.T) {
			tc := newTestCA(t, suite)
			later := func() time.Time { return testNow.Add(time.Hour) }
			for _, cfgSuite := range []sigalg.ID{"", suite} {
				again, err := Open(context.Background(), tc.km, tc.dir, Config{Suite: cfgSuite, Now: later})
				if err != nil {
					t.Fatalf("reopen with suite %q: %v", cfgSuite, err)
				}
				for i, der := range tc.Chain() {
					if !bytes.Equal(der, again.Chain()[i]) {
						t.Errorf("reopen: chain[%d] differs", i)
					}
				}
				if !bytes.Equal(tc.RootPEM(), again.RootPEM()) {
					t.Error("reopen: trust bundle differs")
				}
				iss := issueDevice(t, again, deviceKey(t, sigalg.Ed25519, "reopen").Public(), "reopen")
				if _, err := VerifyChain(iss.DER, tc.Chain()[:1], tc.Chain()[1:], testNow.Add(time.Hour), x509.ExtKeyUsageClientAuth); err != nil {
					t.Errorf("certificate of the reopened CA: %v", err)
				}
			}
		})
	}
}

func TestOpenRefusesMismatch(t *testing.T) {
	ctx := context.Background()
	tc := newTestCA(t, sigalg.ECDSAP256)
	other := newTestCA(t, sigalg.ECDSAP256)
	mldsa := newTestCA(t, sigalg.MLDSA65)
	copyFile := func(t *testing.T, from, to string) {
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string)
		cfg   Config
		want  error
	}{
		{"foreign root", func(t *testing.T, dir string) {
			copyFile(t, filepath.Join(other.dir, FileRoot), filepath.Join(dir, FileRoot))
		}, Config{}, ErrCAMismatch},
		{"foreign issuing", func(t *testing.T, dir string) {
			copyFile(t, filepath.Join(other.dir, FileIssuing), filepath.Join(dir, FileIssuing))
		}, Config{}, ErrCAMismatch},
		{"root and issuing swapped", func(t *testing.T, dir string) {
			copyFile(t, filepath.Join(tc.dir, FileIssuing), filepath.Join(dir, FileRoot))
			copyFile(t, filepath.Join(tc.dir, FileRoot), filepath.Join(dir, FileIssuing))
		}, Config{}, ErrCAMismatch},
		{"other suite asked", func(*testing.T, string) {}, Config{Suite: sigalg.MLDSA65}, ErrCAMismatch},
		{"garbage root", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, FileRoot), []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o644)
		}, Config{}, ErrMalformedCertificate},
		{"two certificates in one file", func(t *testing.T, dir string) {
			data, _ := os.ReadFile(filepath.Join(dir, FileRoot))
			os.WriteFile(filepath.Join(dir, FileRoot), append(data, data...), 0o644)
		}, Config{}, nil},
		{"issuing missing", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, FileIssuing))
		}, Config{}, os.ErrNotExist},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range []string{FileRoot, FileIssuing} {
				copyFile(t, filepath.Join(tc.dir, f), filepath.Join(dir, f))
			}
			c.setup(t, dir)
			c.cfg.Now = fixedClock
			_, err := Open(ctx, tc.km, dir, c.cfg)
			if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
				t.Fatalf("Open = %v, want %v", err, c.want)
			}
		})
	}
	t.Run("another key store", func(t *testing.T) {
		if _, err := Open(ctx, newKeyManager(t, ""), tc.dir, Config{Now: fixedClock}); !errors.Is(err, keys.ErrNotFound) {
			t.Fatalf("Open = %v, want keys.ErrNotFound", err)
		}
	})
	t.Run("ML-DSA CA without its TLS root", func(t *testing.T) {
		dir := t.TempDir()
		for _, f := range []string{FileRoot, FileIssuing} {
			copyFile(t, filepath.Join(mldsa.dir, f), filepath.Join(dir, f))
		}
		if _, err := Open(ctx, mldsa.km, dir, Config{Now: fixedClock}); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Open = %v, want a missing %s", err, FileTLSRoot)
		}
	})
	t.Run("ML-DSA CA with a foreign TLS root", func(t *testing.T) {
		dir := t.TempDir()
		for _, f := range []string{FileRoot, FileIssuing} {
			copyFile(t, filepath.Join(mldsa.dir, f), filepath.Join(dir, f))
		}
		copyFile(t, filepath.Join(tc.dir, FileRoot), filepath.Join(dir, FileTLSRoot))
		if _, err := Open(ctx, mldsa.km, dir, Config{Now: fixedClock}); !errors.Is(err, ErrCAMismatch) {
			t.Fatalf("Open = %v, want ErrCAMismatch", err)
		}
	})
}

// TestOpenResumesInterruptedCreate: keys made by a first start that died
// before root.pem was written are reused, not an error.
func TestOpenResumesInterruptedCreate(t *testing.T) {
	ctx := context.Background()
	km := newKeyManager(t, "")
	rootPub, err := km.CreateKey(ctx, keys.CreateKeyRequest{Name: KeyRoot, Suite: sigalg.ECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := Open(ctx, km, filepath.Join(t.TempDir(), "ca"), Config{Now: fixedClock})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	spki, _ := sigalg.MarshalPublicKey(rootPub)
	if !bytes.Equal(ca.RootCertificate().RawSubjectPublicKeyInfo, spki) {
		t.Error("the existing root key was not reused")
	}
	// Without a configured suite, the interrupted start's suite is kept.
	kmML := newKeyManager(t, "")
	if _, err := kmML.CreateKey(ctx, keys.CreateKeyRequest{Name: KeyRoot, Suite: sigalg.MLDSA65}); err != nil {
		t.Fatal(err)
	}
	if ca, err := Open(ctx, kmML, filepath.Join(t.TempDir(), "ca"), Config{Now: fixedClock}); err != nil || ca.Suite() != sigalg.MLDSA65 {
		t.Fatalf("Open = %v", err)
	}
	// An existing key of another suite than configured is refused, not
	// silently used.
	km2 := newKeyManager(t, "")
	if _, err := km2.CreateKey(ctx, keys.CreateKeyRequest{Name: KeyIssuing, Suite: sigalg.Ed25519}); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, km2, filepath.Join(t.TempDir(), "ca"), Config{Suite: sigalg.ECDSAP256, Now: fixedClock}); !errors.Is(err, ErrCAMismatch) {
		t.Fatalf("Open = %v, want ErrCAMismatch", err)
	}
}

func TestOpenConfig(t *testing.T) {
	ctx := context.Background()
	for _, cfg := range []Config{
		{Suite: "rsa-2048"},
		{Name: "bad\nname"},
		{Name: string(bytes.Repeat([]byte("x"), 65))},
		{RootValidity: -time.Hour},
	} {
		if _, err := Open(ctx, newKeyManager(t, ""), t.TempDir(), cfg); err == nil {
			t.Errorf("Open(%+v) succeeded", cfg)
		}
	}
	if _, err := Open(ctx, newKeyManager(t, ""), "", Config{}); err == nil {
		t.Error("Open with no directory succeeded")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Open(cctx, newKeyManager(t, ""), t.TempDir(), Config{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Open with a cancelled context = %v", err)
	}
	ca, err := Open(ctx, newKeyManager(t, ""), filepath.Join(t.TempDir(), "ca"), Config{Name: "Acme Devices", Suite: "p256", Now: fixedClock})
	if err != nil {
		t.Fatal(err)
	}
	if ca.Suite() != sigalg.ECDSAP256 || ca.RootCertificate().Subject.CommonName != "Acme Devices Root CA" {
		t.Errorf("suite %s, root %q", ca.Suite(), ca.RootCertificate().Subject.CommonName)
	}
}

func TestDeviceProfile(t *testing.T) {
	for _, caSuite := range caSuites {
		tc := newTestCA(t, caSuite)
		for _, s := range sigalg.All() {
			t.Run(string(caSuite)+"/"+string(s.ID()), func(t *testing.T) {
				key := deviceKey(t, s.ID(), "profile")
				id := testIdentity("profile")
				iss := issueDevice(t, tc.CA, key.Public(), "profile")
				// crypto/x509 reads every certificate, ML-DSA ones with
				// an unknown key and signature algorithm.
				std, err := x509.ParseCertificate(iss.DER)
				if err != nil {
					t.Fatalf("x509.ParseCertificate: %v", err)
				}
				c := mustParse(t, iss.DER)
				checkDeviceProfile(t, c, std, id, iss, tc.IssuingCertificate())
				if got, err := identity.FromPublicKey(c.PublicKey); err != nil || got != identity.FromSPKI(c.RawSubjectPublicKeyInfo) {
					t.Errorf("certificate key does not round-trip: %v", err)
				}
				if _, err := VerifyChain(iss.DER, tc.Chain()[:1], tc.Chain()[1:], testNow, x509.ExtKeyUsageClientAuth); err != nil {
					t.Errorf("VerifyChain: %v", err)
				}
				leaf, gotID, err := tc.VerifyDevice([][]byte{iss.DER}, testNow)
				if err != nil || gotID != id || !bytes.Equal(leaf.Raw, iss.DER) {
					t.Errorf("VerifyDevice = %v, %v", gotID, err)
				}
			})
		}
	}
}

func checkDeviceProfile(t *testing.T, c, std *x509.Certificate, id identity.ID, iss *Issued, issuing *x509.Certificate) {
	t.Helper()
	hex := id.String()
	switch {
	case c.Version != 3 || !c.BasicConstraintsValid || c.IsCA:
		t.Error("not a v3 end-entity certificate")
	case c.KeyUsage != x509.KeyUsageDigitalSignature:
		t.Errorf("key usage %b", c.KeyUsage)
	case len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth:
		t.Errorf("extended key usage %v", c.ExtKeyUsage)
	case c.Subject.CommonName != hex || len(c.Subject.Organization) != 1 || c.Subject.Organization[0] != "Hallmark":
		t.Errorf("subject %v", c.Subject)
	case len(c.URIs) != 1 || c.URIs[0].String() != DeviceURIPrefix+hex || len(c.DNSNames)+len(c.IPAddresses)+len(c.EmailAddresses) != 0:
		t.Errorf("subject alternative names %v %v", c.URIs, c.DNSNames)
	case !bytes.Equal(c.AuthorityKeyId, issuing.SubjectKeyId) || len(c.SubjectKeyId) != 20:
		t.Error("key identifiers")
	case !bytes.Equal(c.RawIssuer, issuing.RawSubject):
		t.Error("issuer name")
	case !c.NotBefore.Equal(testNow.Add(-ClockSkew)) || !c.NotAfter.Equal(testNow.Add(365*24*time.Hour)):
		t.Errorf("validity %v – %v", c.NotBefore, c.NotAfter)
	case !c.NotBefore.Equal(iss.NotBefore) || !c.NotAfter.Equal(iss.NotAfter):
		t.Error("Issued times differ from the certificate's")
	case len(c.SerialNumber.Bytes()) != SerialSize || !bytes.Equal(c.SerialNumber.Bytes(), iss.Serial[:]) || c.SerialNumber.Sign() <= 0:
		t.Errorf("serial %x, Issued.Serial %x", c.SerialNumber.Bytes(), iss.Serial)
	case !bytes.Equal(std.RawTBSCertificate, c.RawTBSCertificate):
		t.Error("crypto/x509 and ParseCertificate disagree")
	}
	for _, e := range c.Extensions {
		critical := e.Id.Equal(oidBasicConstraints) || e.Id.Equal(oidKeyUsage)
		if e.Critical != critical {
			t.Errorf("extension %s critical = %v", e.Id, e.Critical)
		}
	}
	switch c.PublicKey.(type) {
	case *ecdsa.PublicKey, ed25519.PublicKey:
		if std.PublicKey == nil {
			t.Error("crypto/x509 did not parse a classical key")
		}
	default:
		if std.PublicKey != nil || c.PublicKey == nil {
			t.Errorf("ML-DSA key: crypto/x509 %T, ParseCertificate %T", std.PublicKey, c.PublicKey)
		}
	}
}

func TestIssueDeviceRefuses(t *testing.T) {
	ctx := context.Background()
	tc := newTestCA(t, sigalg.ECDSAP256)
	weak := make(ed25519.PublicKey, ed25519.PublicKeySize) // the identity point: small order
	weak[0] = 1
	good := deviceKey(t, sigalg.ECDSAP256, "refuse").Public()
	id := testIdentity("refuse")
	cases := []struct {
		name string
		req  DeviceRequest
	}{
		{"zero identity", DeviceRequest{PublicKey: good, Validity: time.Hour}},
		{"no key", DeviceRequest{Identity: id, Validity: time.Hour}},
		{"weak key", DeviceRequest{Identity: id, PublicKey: weak, Validity: time.Hour}},
		{"foreign key type", DeviceRequest{Identity: id, PublicKey: "not a key", Validity: time.Hour}},
		{"zero validity", DeviceRequest{Identity: id, PublicKey: good}},
		{"negative validity", DeviceRequest{Identity: id, PublicKey: good, Validity: -time.Hour}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := tc.IssueDevice(ctx, c.req); !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("IssueDevice = %v, want ErrInvalidRequest", err)
			}
		})
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := tc.IssueDevice(cctx, DeviceRequest{Identity: id, PublicKey: good, Validity: time.Hour}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

// TestValidityCappedAtIssuer: no device certificate outlives the issuing
// CA, and an expired issuing CA issues nothing.
func TestValidityCappedAtIssuer(t *testing.T) {
	ctx := context.Background()
	km := newKeyManager(t, "")
	now := testNow
	ca, err := Open(ctx, km, filepath.Join(t.TempDir(), "ca"), Config{IssuingValidity: 30 * 24 * time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	req := DeviceRequest{Identity: testIdentity("cap"), PublicKey: deviceKey(t, sigalg.Ed25519, "cap").Public(), Validity: 365 * 24 * time.Hour}
	iss, err := ca.IssueDevice(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !iss.NotAfter.Equal(ca.IssuingCertificate().NotAfter) {
		t.Errorf("NotAfter %v, want the issuing CA's %v", iss.NotAfter, ca.IssuingCertificate().NotAfter)
	}
	now = ca.IssuingCertificate().NotAfter
	if _, err := ca.IssueDevice(ctx, req); !errors.Is(err, ErrExpired) {
		t.Errorf("IssueDevice from an expired CA = %v, want ErrExpired", err)
	}
}

// TestSerials: 10,000 issued certificates have 10,000 distinct positive
// 16-byte serials.
func TestSerials(t *testing.T) {
	tc := newTestCA(t, sigalg.ECDSAP256)
	pub := deviceKey(t, sigalg.Ed25519, "serials").Public()
	const n, workers = 10000, 4
	var mu sync.Mutex
	seen := make(map[[SerialSize]byte]bool, n)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range n / workers {
				iss, err := tc.IssueDevice(context.Background(), DeviceRequest{Identity: testIdentity("serials"), PublicKey: pub, Validity: time.Hour})
				if err != nil {
					errs <- err
					return
				}
				c, err := x509.ParseCertificate(iss.DER)
				if err != nil {
					errs <- err
					return
				}
				if b := c.SerialNumber.Bytes(); c.SerialNumber.Sign() <= 0 || len(b) != SerialSize || !bytes.Equal(b, iss.Serial[:]) {
					errs <- errors.New("serial not 16 bytes and positive")
					return
				}
				mu.Lock()
				dup := seen[iss.Serial]
				seen[iss.Serial] = true
				mu.Unlock()
				if dup {
					errs <- errors.New("duplicate serial")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(seen) != n {
		t.Fatalf("%d serials, want %d", len(seen), n)
	}
}

func TestNewSerialBits(t *testing.T) {
	for _, fill := range []byte{0x00, 0xff, 0x80, 0x7f} {
		s, err := newSerial(bytes.NewReader(bytes.Repeat([]byte{fill}, SerialSize)))
		if err != nil {
			t.Fatal(err)
		}
		if s[0]&0xc0 != 0x40 {
			t.Errorf("fill %#x: first byte %#x, want 01xxxxxx", fill, s[0])
		}
		if !bytes.Equal(s[1:], bytes.Repeat([]byte{fill}, SerialSize-1)) {
			t.Errorf("fill %#x: other bytes changed", fill)
		}
	}
	if _, err := newSerial(bytes.NewReader(make([]byte, 5))); err == nil {
		t.Error("short random source accepted")
	}
}
