package device

import (
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/tpm"
	"github.com/hallmark-iot/hallmark/internal/tpm/tpmtest"
)

// TestTPMDeviceEnrolsWithKeysInTheTPM takes a tpm-class device through
// enrolment, a save and a load, a second power-up and its operational
// key, and checks that its state names its TPM and holds no private key.
func TestTPMDeviceEnrolsWithKeysInTheTPM(t *testing.T) {
	sim := tpmtest.Start(t)
	v := newVendor(t, sigalg.ECDSAP256)
	d := newDevice(t, Config{Class: ClassTPM, Algorithm: sigalg.ECDSAP256, RootKeyHashes: [][32]byte{v.hash}, TPM: sim.String()})
	bootIEF(t, d, v)
	nonce := []byte("a station nonce, 32 bytes long..")
	enr, err := d.Enrol(nonce)
	if err != nil {
		t.Fatal(err)
	}
	checkEnrolment(t, enr, nonce)
	if enr.Class != ClassTPM || enr.Algorithm != sigalg.ECDSAP256 || enr.Injection != InjectionNone {
		t.Fatalf("enrolment says %s/%s/%s", enr.Class, enr.Algorithm, enr.Injection)
	}
	key, err := d.enrolmentKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := key.(*tpm.Key); !ok {
		t.Fatalf("enrolment key is a %T, not a key in the TPM", key)
	}

	path := filepath.Join(t.TempDir(), "gateway.json")
	if err := d.Save(path); err != nil {
		t.Fatal(err)
	}
	again, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	bootIEF(t, again, v)
	id, err := again.Identity()
	if err != nil || id != enr.Identity {
		t.Fatalf("identity after reload = %s, %v; want %s", id, err, enr.Identity)
	}
	op, err := again.OperationalKey(sigalg.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := op.(*tpm.Key); !ok || op.Public().(*ecdsa.PublicKey).Equal(key.Public()) {
		t.Fatalf("operational key %T is not a second key in the TPM", op)
	}
	if _, err := again.OperationalKey(sigalg.Ed25519); !errors.Is(err, sigalg.ErrUnknownAlgorithm) {
		t.Fatalf("Ed25519 operational key from a TPM: %v", err)
	}
	if err := again.Save(path); err != nil {
		t.Fatal(err)
	}

	// The state file: the TPM's address and two wrapped blobs, no PKCS #8
	// key, and a key store with nothing in it.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st state
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	if st.TPM == nil || st.TPM.Address != sim.String() || st.TPM.EnrolmentKey == nil || st.TPM.OperationalKey == nil {
		t.Fatalf("tpm section %+v", st.TPM)
	}
	if ks := st.KeyStore; ks.EnrolmentKey != nil || ks.OperationalKey != nil || ks.ClassKey != nil {
		t.Fatal("a tpm device's key store holds a key")
	}
	if strings.Contains(string(raw), "PRIVATE KEY") {
		t.Fatal("state holds a PEM private key")
	}

	// Proofs for later protocol steps are signed by the TPM too.
	pid, sig, err := again.Prove("hallmark test proof v1", nonce)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := sigalg.ParsePublicKey(enr.PublicKey)
	suite, _ := sigalg.SuiteOf(pub)
	if err := suite.Verify(pub, identity.ProofMessage("hallmark test proof v1", nonce, pid), sig); err != nil {
		t.Fatalf("onboarding proof: %v", err)
	}
}

func TestTPMDeviceRefusals(t *testing.T) {
	sim := tpmtest.Start(t)
	v := newVendor(t, sigalg.ECDSAP256)
	roots := [][32]byte{v.hash}
	for name, cfg := range map[string]Config{
		"ed25519":  {Class: ClassTPM, Algorithm: sigalg.Ed25519, RootKeyHashes: roots, TPM: sim.String()},
		"no tpm":   {Class: ClassTPM, Algorithm: sigalg.ECDSAP256, RootKeyHashes: roots},
		"bad addr": {Class: ClassTPM, Algorithm: sigalg.ECDSAP256, RootKeyHashes: roots, TPM: "tpm0"},
	} {
		if _, err := New(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := New(Config{Class: ClassTPM, Algorithm: sigalg.ECDSAP256, RootKeyHashes: roots, TPM: "tcp://127.0.0.1:1"}); !errors.Is(err, ErrNoTPM) {
		t.Errorf("unreachable TPM: %v", err)
	}

	// A state whose key store holds a key next to a TPM section is refused.
	d := newDevice(t, Config{Class: ClassTPM, Algorithm: sigalg.ECDSAP256, RootKeyHashes: roots, TPM: sim.String()})
	suite, _ := sigalg.ECDSAP256.Suite()
	k, _ := suite.GenerateKey(rand.Reader)
	d.st.KeyStore.EnrolmentKey, _ = sigalg.MarshalPrivateKey(k)
	raw, _ := json.Marshal(d.st)
	if _, err := Unmarshal(raw, nil); !errors.Is(err, ErrMalformedState) {
		t.Fatalf("tpm state with a PKCS #8 key: %v", err)
	}

	// Another TPM cannot load this one's key: the device points at a fresh
	// simulator and refuses to move there.
	d.st.KeyStore.EnrolmentKey = nil
	bootIEF(t, d, v)
	if _, err := d.Enrol(make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	other := tpmtest.Start(t)
	if err := d.SetTPM(other.String()); !errors.Is(err, tpm.ErrWrongTPM) {
		t.Fatalf("moved to another TPM: %v", err)
	}
	if d.TPMAddress() != sim.String() {
		t.Fatalf("address changed to %s after a refused move", d.TPMAddress())
	}
}

// FuzzUnmarshalTPMState feeds the state parser from a tpm gateway's state
// (testdata/tpm-gateway.json, saved from a swtpm run): the tpm section's
// address and key blobs are outside data too. Parsing needs no TPM.
func FuzzUnmarshalTPMState(f *testing.F) {
	data, err := os.ReadFile(filepath.Join("testdata", "tpm-gateway.json"))
	if err != nil {
		f.Fatal(err)
	}
	if _, err := Unmarshal(data, nil); err != nil {
		f.Fatalf("the seed state does not load: %v", err)
	}
	f.Add(data)
	f.Add([]byte(strings.Replace(string(data), `"tcp://127.0.0.1:2321"`, `"/dev/tpmrm0"`, 1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Unmarshal(data, nil)
		if err != nil {
			if !errors.Is(err, ErrMalformedState) {
				t.Fatalf("error without ErrMalformedState: %v", err)
			}
			return
		}
		if d.Class() == ClassTPM && (d.TPMAddress() == "" || d.Algorithm() != sigalg.ECDSAP256) {
			t.Fatalf("accepted a tpm state with address %q, suite %s", d.TPMAddress(), d.Algorithm())
		}
		out, err := json.Marshal(d.st)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Unmarshal(out, nil); err != nil {
			t.Fatalf("an accepted state does not load again: %v", err)
		}
	})
}
