package tpmkms

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/keys/keystest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/tpm"
	"github.com/hallmark-iot/hallmark/internal/tpm/tpmtest"
)

var tpmSuites = keystest.Config{Suites: []sigalg.ID{sigalg.ECDSAP256}}

func newLoc(t *testing.T, sim *tpmtest.Simulator) Location {
	return Location{Address: sim.Address, Dir: filepath.Join(t.TempDir(), "tpm-keys")}
}

func openTest(t *testing.T, loc Location) *Store {
	t.Helper()
	s, err := Open(context.Background(), loc, true)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func mustCreate(t *testing.T, s *Store, name string) crypto.PublicKey {
	t.Helper()
	pub, err := s.CreateKey(context.Background(), keys.CreateKeyRequest{Name: name, Suite: sigalg.ECDSAP256})
	if err != nil {
		t.Fatalf("CreateKey(%s): %v", name, err)
	}
	return pub
}

// One simulator serves every store of the contract: each store has its
// own directory, and the TPM keeps nothing between operations.
func TestContract(t *testing.T) {
	sim := tpmtest.Start(t)
	keystest.RunWith(t, tpmSuites, func(t *testing.T) keys.Manager { return openTest(t, newLoc(t, sim)) })
}

func TestPersistence(t *testing.T) {
	sim := tpmtest.Start(t)
	keystest.RunPersistenceWith(t, tpmSuites, func(t *testing.T) func() (keys.Manager, error) {
		loc := newLoc(t, sim)
		return func() (keys.Manager, error) { return Open(context.Background(), loc, true) }
	})
}

// The refusal of Ed25519 and ML-DSA says why, beyond what the contract
// checks (ErrUnsupported naming the suite).
func TestOtherSuitesRefusedWithTheReason(t *testing.T) {
	s := openTest(t, newLoc(t, tpmtest.Start(t)))
	defer s.Close()
	for _, suite := range []sigalg.ID{sigalg.Ed25519, sigalg.MLDSA44, sigalg.MLDSA65, sigalg.MLDSA87} {
		_, err := s.CreateKey(context.Background(), keys.CreateKeyRequest{Name: "k", Suite: suite})
		if !errors.Is(err, keys.ErrUnsupported) || !strings.Contains(err.Error(), string(suite)) || !strings.Contains(err.Error(), "TPM 2.0") {
			t.Errorf("%s: %v", suite, err)
		}
	}
	entries, _ := os.ReadDir(s.loc.Dir)
	if len(entries) != 1 {
		t.Errorf("refused creations left %d files (want only %s)", len(entries), metaFile)
	}
}

func TestOpenByURI(t *testing.T) {
	ctx := context.Background()
	sim := tpmtest.Start(t)
	loc := newLoc(t, sim)
	uri := "tpm:" + loc.String()

	// Without Create, a directory with no store is not found, not made.
	if _, err := keys.Open(ctx, uri, keys.Options{}); !errors.Is(err, keys.ErrNotFound) {
		t.Fatalf("keys.Open of a missing store: %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(loc.Dir); err == nil {
		t.Fatal("keys.Open without Create made the directory")
	}
	m, err := keys.Open(ctx, uri, keys.Options{Create: true, Passphrase: []byte("ignored by the TPM store")})
	if err != nil {
		t.Fatalf("keys.Open(%s): %v", uri, err)
	}
	pub := mustCreate(t, m.(*Store), "ca")
	m.Close()
	m, err = keys.Open(ctx, uri, keys.Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer m.Close()
	signer, err := m.Signer(ctx, "ca")
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("certificate to be")
	sig, err := sigalg.Sign(signer, msg)
	if err != nil {
		t.Fatal(err)
	}
	suite, _ := sigalg.ECDSAP256.Suite()
	if err := suite.Verify(pub, msg, sig); err != nil {
		t.Fatal(err)
	}

	for _, bad := range []string{
		"tpm:/dev/tpmrm0",                      // no dir
		"tpm:/dev/tpmrm0?dir=relative/keys",    // relative
		"tpm:/dev/tpmrm0?dir=/var/lib/../keys", // unclean
		"tpm:/dev/tpmrm0?dir=/k&mode=x",        // a second parameter
		"tpm:/dev/tpmrm0?path=/k",              // unknown parameter
		"tpm:tcp://127.0.0.1?dir=/k",           // no port
		"tpm:dev/tpmrm0?dir=/k",                // not an address
		"tpm:/dev/tpmrm0?dir=/",                // the root
		"tpm:/dev/tpmrm0?dir=/k%2",             // bad escape
		"tpm:/dev/tpmrm0?dir=/a%2fb",           // another spelling of /a/b
	} {
		if _, err := keys.Open(ctx, bad, keys.Options{Create: true}); !errors.Is(err, ErrLocation) {
			t.Errorf("%s: %v, want ErrLocation", bad, err)
		}
	}
}

func TestParseLocation(t *testing.T) {
	for in, want := range map[string]Location{
		"/dev/tpmrm0?dir=/var/lib/hallmark/tpm-keys":    {tpm.Address{Kind: tpm.Device, Target: "/dev/tpmrm0"}, "/var/lib/hallmark/tpm-keys"},
		"tcp://127.0.0.1:2321?dir=/k":                   {tpm.Address{Kind: tpm.TCP, Target: "127.0.0.1:2321"}, "/k"},
		"unix:///run/swtpm/sock?dir=/srv/keys%20and%26": {tpm.Address{Kind: tpm.Unix, Target: "/run/swtpm/sock"}, "/srv/keys and&"},
	} {
		got, err := ParseLocation(in)
		if err != nil || got != want {
			t.Errorf("ParseLocation(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if got.String() != in {
			t.Errorf("%q prints as %q", in, got.String())
		}
	}
}

// rewriteKeyFile edits a key file as an attacker with write access to the
// store directory would, keeping it in the canonical form so that only
// the TPM or the label check can catch the change.
func rewriteKeyFile(t *testing.T, path string, edit func(*keyFile)) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var kf keyFile
	if err := json.Unmarshal(data, &kf); err != nil {
		t.Fatal(err)
	}
	edit(&kf)
	data, _ = json.Marshal(kf)
	if err := os.WriteFile(path, append(data, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Attacks by someone who can write the store directory but not reach into
// the TPM: every altered blob is refused with ErrCorrupt, by the TPM's
// integrity check or the name label, and nothing signs with it.
func TestTamperedBlobsAreRefused(t *testing.T) {
	ctx := context.Background()
	loc := newLoc(t, tpmtest.Start(t))
	s := openTest(t, loc)
	for _, name := range []string{"ca", "station"} {
		mustCreate(t, s, name)
	}
	s.Close()
	pristine := map[string][]byte{}
	for _, name := range []string{"ca", "station"} {
		pristine[name], _ = os.ReadFile(filepath.Join(loc.Dir, name+keySuffix))
	}
	reset := func() {
		for name, data := range pristine {
			os.WriteFile(filepath.Join(loc.Dir, name+keySuffix), data, 0o600)
		}
	}
	caFile := filepath.Join(loc.Dir, "ca"+keySuffix)
	type attack struct {
		do func()
		// caughtBy is in the error: which check must refuse the file.
		caughtBy string
	}
	const byTPM = "TPM_RC_INTEGRITY"
	for what, a := range map[string]attack{
		"private area bit flipped": {func() {
			rewriteKeyFile(t, caFile, func(kf *keyFile) { kf.Private[len(kf.Private)-1] ^= 1 })
		}, byTPM},
		"private area of another key": {func() {
			var other keyFile
			json.Unmarshal(pristine["station"], &other)
			rewriteKeyFile(t, caFile, func(kf *keyFile) { kf.Private = other.Private })
		}, byTPM},
		// The label is the public area's authPolicy, its last 34 bytes
		// but for the point: change it to the station's name's label,
		// as a rename would need.
		"label rewritten for another name": {func() {
			rewriteKeyFile(t, caFile, func(kf *keyFile) {
				i := bytes.Index(kf.Public, label("ca"))
				if i < 0 {
					t.Fatal("label not found in the public area")
				}
				copy(kf.Public[i:], label("station"))
				kf.Name = "station"
			})
			os.Rename(caFile, filepath.Join(loc.Dir, "station"+keySuffix))
		}, byTPM},
		"file renamed to another name": {func() {
			rewriteKeyFile(t, caFile, func(kf *keyFile) { kf.Name = "station" })
			os.Rename(caFile, filepath.Join(loc.Dir, "station"+keySuffix))
		}, "moved from another name"},
		"truncated":       {func() { os.WriteFile(caFile, pristine["ca"][:40], 0o600) }, "unexpected EOF"},
		"public area cut": {func() { rewriteKeyFile(t, caFile, func(kf *keyFile) { kf.Public = kf.Public[:20] }) }, "invalid TPM key blob"},
	} {
		t.Run(what, func(t *testing.T) {
			defer reset()
			a.do()
			s := openTest(t, loc)
			defer s.Close()
			for _, name := range []string{"ca", "station"} {
				path := filepath.Join(loc.Dir, name+keySuffix)
				data := readOrNil(path)
				if bytes.Equal(data, pristine[name]) {
					continue
				}
				if data == nil { // moved away
					if _, err := s.PublicKey(ctx, name); !errors.Is(err, keys.ErrNotFound) {
						t.Errorf("PublicKey(%s) of a moved file: %v, want ErrNotFound", name, err)
					}
					continue
				}
				if _, err := s.PublicKey(ctx, name); !errors.Is(err, keys.ErrCorrupt) {
					t.Errorf("PublicKey(%s): %v, want ErrCorrupt", name, err)
				}
				_, err := s.Signer(ctx, name)
				if !errors.Is(err, keys.ErrCorrupt) || !strings.Contains(err.Error(), a.caughtBy) {
					t.Errorf("Signer(%s): %v, want ErrCorrupt from %q", name, err, a.caughtBy)
				}
			}
		})
	}
	// After all that, the untouched files still work.
	s = openTest(t, loc)
	defer s.Close()
	if _, err := s.Signer(ctx, "ca"); err != nil {
		t.Fatal(err)
	}
}

func readOrNil(path string) []byte {
	data, _ := os.ReadFile(path)
	return data
}

// A store carried to another TPM (another owner seed, so another storage
// root key) is refused at Open, saying so; a key file slipped into a store
// of the other TPM is refused by that TPM when it loads it.
func TestKeysDoNotMoveToAnotherTPM(t *testing.T) {
	ctx := context.Background()
	first, second := tpmtest.Start(t), tpmtest.Start(t)
	loc := newLoc(t, first)
	s := openTest(t, loc)
	mustCreate(t, s, "ca")
	s.Close()

	moved := Location{Address: second.Address, Dir: loc.Dir}
	_, err := Open(ctx, moved, false)
	if !errors.Is(err, keys.ErrCorrupt) || !errors.Is(err, tpm.ErrWrongTPM) || !strings.Contains(err.Error(), "another TPM") {
		t.Fatalf("a store opened on another TPM: %v", err)
	}

	other := openTest(t, newLoc(t, second))
	defer other.Close()
	data, _ := os.ReadFile(filepath.Join(loc.Dir, "ca"+keySuffix))
	if err := os.WriteFile(filepath.Join(other.loc.Dir, "ca"+keySuffix), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Signer(ctx, "ca"); !errors.Is(err, keys.ErrCorrupt) || !strings.Contains(err.Error(), "another TPM") {
		t.Fatalf("another TPM's key file: %v, want ErrCorrupt naming the cause", err)
	}
}

func TestFileModes(t *testing.T) {
	ctx := context.Background()
	loc := newLoc(t, tpmtest.Start(t))
	s := openTest(t, loc)
	defer s.Close()
	mustCreate(t, s, "ca")
	if info, _ := os.Stat(loc.Dir); info.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %#o, want 0700", info.Mode().Perm())
	}
	for _, name := range []string{metaFile, "ca" + keySuffix} {
		if info, err := os.Stat(filepath.Join(loc.Dir, name)); err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600", name, info.Mode().Perm(), err)
		}
	}
	s.Close()
	os.Chmod(filepath.Join(loc.Dir, "ca"+keySuffix), 0o644)
	s = openTest(t, loc)
	if _, err := s.PublicKey(ctx, "ca"); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a key file readable by others was used: %v", err)
	}
	os.Chmod(loc.Dir, 0o755)
	if _, err := Open(ctx, loc, false); err == nil || !strings.Contains(err.Error(), "chmod 700") {
		t.Errorf("a store directory open to others was opened: %v", err)
	}
}

func TestOpenRefuses(t *testing.T) {
	ctx := context.Background()
	sim := tpmtest.Start(t)
	t.Run("unreachable TPM leaves nothing behind", func(t *testing.T) {
		addr, _ := tpm.ParseAddress("tcp://127.0.0.1:1")
		loc := Location{Address: addr, Dir: filepath.Join(t.TempDir(), "k")}
		if _, err := Open(ctx, loc, true); !errors.Is(err, tpm.ErrUnreachable) {
			t.Fatalf("%v, want ErrUnreachable", err)
		}
		if _, err := os.Stat(loc.Dir); err == nil {
			t.Fatal("a failed Open made the directory")
		}
	})
	t.Run("directory that is not a store", func(t *testing.T) {
		loc := newLoc(t, sim)
		os.Mkdir(loc.Dir, 0o700)
		os.WriteFile(filepath.Join(loc.Dir, "notes.txt"), []byte("hi"), 0o600)
		if _, err := Open(ctx, loc, true); err == nil || !strings.Contains(err.Error(), "not a Hallmark TPM key store") {
			t.Fatalf("%v", err)
		}
	})
	t.Run("edited store file", func(t *testing.T) {
		loc := newLoc(t, sim)
		openTest(t, loc).Close()
		path := filepath.Join(loc.Dir, metaFile)
		data, _ := os.ReadFile(path)
		os.WriteFile(path, append([]byte(" "), data...), 0o600)
		if _, err := Open(ctx, loc, false); !errors.Is(err, keys.ErrCorrupt) {
			t.Fatalf("%v, want ErrCorrupt", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := Open(cancelled, newLoc(t, sim), true); !errors.Is(err, context.Canceled) {
			t.Fatalf("%v", err)
		}
	})
}

// The signer follows crypto.Signer for ECDSA: it signs digests, which
// x509 and TLS hand it for SHA-256, -384 and -512, and refuses a whole
// message.
func TestSignerDigests(t *testing.T) {
	s := openTest(t, newLoc(t, tpmtest.Start(t)))
	defer s.Close()
	mustCreate(t, s, "ca")
	signer, err := s.Signer(context.Background(), "ca")
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("tbs certificate"))
	sig, err := signer.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(signer.Public().(*ecdsa.PublicKey), digest[:], sig) {
		t.Fatal("the signature over a SHA-256 digest does not verify")
	}
	if _, err := signer.Sign(rand.Reader, []byte("a whole message"), crypto.Hash(0)); !errors.Is(err, keys.ErrUnsupported) {
		t.Fatalf("whole-message signing: %v, want ErrUnsupported", err)
	}
	// What the platform's CA does with it: x509 signs with the signer.
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "TPM CA"},
		NotBefore: time.Unix(1_700_000_000, 0), NotAfter: time.Unix(1_900_000_000, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
	if err != nil {
		t.Fatalf("x509 with the TPM signer: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		t.Fatalf("the TPM-signed certificate does not verify: %v", err)
	}
}
