package device

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/continuity"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// onboarded makes a running ECDSA device of class that holds credentials,
// as one in the field does.
func onboarded(t *testing.T, class Class, v vendor) *Device {
	t.Helper()
	d := newDevice(t, Config{Class: class, Algorithm: sigalg.ECDSAP256, RootKeyHashes: [][32]byte{v.hash}, EncryptedChannel: class == ClassInject})
	if class == ClassInject {
		injectKey(t, d)
	}
	bootIEF(t, d, v)
	if _, err := d.Enrol([]byte("station nonce")); err != nil {
		t.Fatal(err)
	}
	d.SetCredentials(Credentials{CertificateChain: []string{"leaf"}, CloudEndpoint: "mqtts://cloud"})
	return d
}

// begin starts a migration to target the way the update agent does for
// the device's class.
func begin(t *testing.T, d *Device, target sigalg.ID) (*Migration, error) {
	t.Helper()
	if d.Class() != ClassInject {
		return d.BeginMigration(target)
	}
	suite, _ := target.Suite()
	key, _ := suite.GenerateKey(rand.Reader)
	der, _ := sigalg.MarshalPrivateKey(key)
	transport, err := d.TransportKey()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := SealMigrationKey(transport, der)
	if err != nil {
		t.Fatal(err)
	}
	return d.BeginInjectedMigration(sealed)
}

func TestMigrationCommit(t *testing.T) {
	v := newVendor(t, sigalg.Ed25519)
	for _, class := range Classes {
		t.Run(string(class), func(t *testing.T) {
			d := onboarded(t, class, v)
			old, _ := d.Identity()
			oldKey, _ := d.enrolmentKey()
			oldSPKI, _ := sigalg.MarshalPublicKey(oldKey.Public())
			m, err := begin(t, d, sigalg.MLDSA65)
			if err != nil {
				t.Fatal(err)
			}
			_, suite, err := sigalg.ParsePublicKeyWithSuite(m.PublicKey)
			if err != nil || suite.ID() != sigalg.MLDSA65 || m.Algorithm != sigalg.MLDSA65 {
				t.Fatalf("pending key %v, %v", suite, err)
			}
			if m.Identity == old || m.Identity != identity.FromSPKI(m.PublicKey) {
				t.Fatal("the pending identity is the old one, or not SHA-256 of its SPKI")
			}
			if now, _ := d.Identity(); now != old || d.Algorithm() != sigalg.ECDSAP256 {
				t.Fatal("beginning a migration changed the enrolment key")
			}
			if _, err := begin(t, d, sigalg.MLDSA87); !errors.Is(err, ErrMigrationPending) {
				t.Fatalf("second begin = %v", err)
			}

			if class == ClassPUF {
				path := filepath.Join(t.TempDir(), "d.json")
				d.Save(path)
				state, _ := os.ReadFile(path)
				pending, _ := d.pendingKey()
				der, _ := sigalg.MarshalPrivateKey(pending)
				if bytes.Contains(state, []byte(base64.StdEncoding.EncodeToString(der))) {
					t.Fatal("a puf chip stored its pending key")
				}
			}
			d = reload(t, d)
			if got, err := d.PendingMigration(); err != nil || got.Identity != m.Identity {
				t.Fatalf("pending migration after a power cycle: %v, %v", got, err)
			}
			if err := d.Boot(); err != nil {
				t.Fatal(err)
			}
			ch := continuity.Challenge{Nonce: bytes.Repeat([]byte{7}, 32), ServerName: "hallmark.test"}
			rand.Read(ch.ID[:])
			proof, err := d.ProveContinuity(ch)
			if err != nil {
				t.Fatal(err)
			}
			succ, err := continuity.Verify(proof, ch, continuity.Predecessor{Algorithm: sigalg.ECDSAP256, PublicKey: oldSPKI}, continuity.Policy{})
			if err != nil || succ.Identity != m.Identity {
				t.Fatalf("continuity proof: %v (successor %s)", err, succ.Identity)
			}

			committed, err := d.CommitMigration()
			if err != nil || committed.Identity != m.Identity {
				t.Fatalf("commit: %v", err)
			}
			if _, err := d.PendingMigration(); !errors.Is(err, ErrNoMigration) {
				t.Fatalf("pending after commit: %v", err)
			}
			path := filepath.Join(t.TempDir(), "d.json")
			d.Save(path)
			state, _ := os.ReadFile(path)
			if class != ClassPUF {
				oldDER, _ := sigalg.MarshalPrivateKey(oldKey)
				if bytes.Contains(state, []byte(base64.StdEncoding.EncodeToString(oldDER))) {
					t.Fatal("the old key is still in the key store")
				}
			}
			d, _ = Load(path, nil)
			bootIEF(t, d, v)
			enr, err := d.Enrol([]byte("n"))
			if err != nil || enr.Identity != m.Identity || enr.Algorithm != sigalg.MLDSA65 {
				t.Fatalf("after commit and a power cycle: %+v, %v", enr, err)
			}
			if !bytes.Equal(enr.PublicKey, m.PublicKey) {
				t.Fatal("enrolment key is not the pending one")
			}
			if class == ClassPUF && d.st.OTP.PUFGeneration != 1 {
				t.Fatalf("puf generation %d after one migration", d.st.OTP.PUFGeneration)
			}
		})
	}
}

func TestMigrationAbort(t *testing.T) {
	v := newVendor(t, sigalg.Ed25519)
	for _, class := range Classes {
		t.Run(string(class), func(t *testing.T) {
			d := onboarded(t, class, v)
			old, _ := d.Identity()
			if err := d.AbortMigration(); !errors.Is(err, ErrNoMigration) {
				t.Fatalf("abort without a migration = %v", err)
			}
			m87, err := begin(t, d, sigalg.MLDSA87)
			if err != nil {
				t.Fatal(err)
			}
			d = reload(t, d)
			if err := d.AbortMigration(); err != nil {
				t.Fatal(err)
			}
			if d.st.KeyStore != nil && d.st.KeyStore.PendingKey != nil {
				t.Fatal("the aborted key is still in the key store")
			}
			if _, err := d.CommitMigration(); !errors.Is(err, ErrNotRunning) {
				t.Fatalf("commit before boot = %v", err)
			}
			bootIEF(t, d, v)
			if _, err := d.CommitMigration(); !errors.Is(err, ErrNoMigration) {
				t.Fatalf("commit after abort = %v", err)
			}
			if now, _ := d.Identity(); now != old {
				t.Fatal("abort changed the identity")
			}
			m65, err := begin(t, d, sigalg.MLDSA65)
			if err != nil {
				t.Fatal(err)
			}
			if m65.Identity == m87.Identity {
				t.Fatal("the ML-DSA-65 and ML-DSA-87 keys have one identity")
			}
		})
	}
}

// TestPUFGenerationZeroIsTheFirstRelease pins generation 0 to the context
// chips were made with before migrations existed (TestV1StateLoadsAsSlotA
// checks a chip made then), and shows later generations are separated by
// number and suite.
func TestPUFGenerationZeroIsTheFirstRelease(t *testing.T) {
	if got := pufEnrolmentContext(0, sigalg.MLDSA65); got != "hallmark puf enrolment key v1" {
		t.Fatalf("generation 0 context %q", got)
	}
	seen := map[string]bool{}
	for _, gen := range []uint32{0, 1, 2} {
		for _, alg := range []sigalg.ID{sigalg.MLDSA65, sigalg.MLDSA87} {
			c := pufEnrolmentContext(gen, alg)
			if gen > 0 && seen[c] {
				t.Fatalf("context %q repeats", c)
			}
			seen[c] = true
		}
	}
}

func TestMigrationRefusals(t *testing.T) {
	v := newVendor(t, sigalg.Ed25519)
	keygen := newDevice(t, Config{Class: ClassKeygen, Algorithm: sigalg.ECDSAP256, RootKeyHashes: [][32]byte{v.hash}})
	if _, err := keygen.BeginMigration(sigalg.MLDSA65); !errors.Is(err, ErrNotRunning) {
		t.Errorf("begin before boot = %v", err)
	}
	bootIEF(t, keygen, v)
	if _, err := keygen.BeginMigration(sigalg.MLDSA65); !errors.Is(err, ErrNoKey) {
		t.Errorf("begin on a keygen chip that never made its key = %v", err)
	}
	if _, err := keygen.BeginMigration("rsa-2048"); err == nil {
		t.Error("begin to an unknown suite succeeded")
	}
	if _, err := keygen.BeginInjectedMigration([]byte("x")); !errors.Is(err, ErrWrongInjection) {
		t.Errorf("injected migration of a keygen chip = %v", err)
	}

	inject := onboarded(t, ClassInject, v)
	if _, err := inject.BeginMigration(sigalg.MLDSA65); !errors.Is(err, ErrWrongInjection) {
		t.Errorf("an inject chip generating its own key = %v", err)
	}
	suite, _ := sigalg.MLDSA65.Suite()
	key, _ := suite.GenerateKey(rand.Reader)
	der, _ := sigalg.MarshalPrivateKey(key)
	transport, _ := inject.TransportKey()
	factorySealed, _ := transport.Wrap(der)
	if _, err := inject.BeginInjectedMigration(factorySealed); !errors.Is(err, ErrWrongInjection) {
		t.Errorf("a key sealed for the factory accepted as a migration key: %v", err)
	}
	if _, err := inject.BeginInjectedMigration(der); !errors.Is(err, ErrWrongInjection) {
		t.Errorf("a key in the clear accepted: %v", err)
	}
	current, _ := sigalg.ParsePrivateKey(inject.st.KeyStore.EnrolmentKey)
	currentDER, _ := sigalg.MarshalPrivateKey(current)
	same, _ := SealMigrationKey(transport, currentDER)
	if _, err := inject.BeginInjectedMigration(same); !errors.Is(err, ErrWrongInjection) {
		t.Errorf("the current key as the new one: %v", err)
	}
	if inject.st.Flash.Migration != nil || inject.st.KeyStore.PendingKey != nil {
		t.Error("a refused migration left a pending key")
	}

	noChannel := newDevice(t, Config{Class: ClassInject, Algorithm: sigalg.ECDSAP256, RootKeyHashes: [][32]byte{v.hash}})
	injectKey(t, noChannel)
	bootIEF(t, noChannel, v)
	noChannel.SetCredentials(Credentials{CloudEndpoint: "mqtts://cloud"})
	if _, err := noChannel.BeginInjectedMigration(factorySealed); !errors.Is(err, ErrNoChannel) {
		t.Errorf("over-the-air migration without the encrypted channel = %v", err)
	}

	fresh := newDevice(t, Config{Class: ClassInject, Algorithm: sigalg.ECDSAP256, RootKeyHashes: [][32]byte{v.hash}, EncryptedChannel: true})
	injectKey(t, fresh)
	bootIEF(t, fresh, v)
	freshTransport, _ := fresh.TransportKey()
	sealed, _ := SealMigrationKey(freshTransport, der)
	if _, err := fresh.BeginInjectedMigration(sealed); !errors.Is(err, ErrNotOnboarded) {
		t.Errorf("migration of a chip not yet onboarded = %v", err)
	}
}

// TestMigrationStateRefusals: a loaded pending migration must match the
// chip's class and its key.
func TestMigrationStateRefusals(t *testing.T) {
	v := newVendor(t, sigalg.Ed25519)
	for _, class := range []Class{ClassPUF, ClassKeygen} {
		d := onboarded(t, class, v)
		if _, err := begin(t, d, sigalg.MLDSA65); err != nil {
			t.Fatal(err)
		}
		for name, edit := range map[string]func(*state){
			"unknown suite":    func(s *state) { s.Flash.Migration.Algorithm = "rsa" },
			"wrong generation": func(s *state) { s.Flash.Migration.PUFGeneration = 5 },
			"key of another suite": func(s *state) {
				if s.KeyStore != nil {
					s.Flash.Migration.Algorithm = sigalg.MLDSA87
				} else {
					s.Flash.Migration.PUFGeneration = 0
				}
			},
		} {
			var st state
			raw, _ := json.Marshal(d.st)
			json.Unmarshal(raw, &st)
			edit(&st)
			data, _ := json.Marshal(st)
			if _, err := Unmarshal(data, nil); !errors.Is(err, ErrMalformedState) {
				t.Errorf("%s/%s: Unmarshal = %v", class, name, err)
			}
		}
	}
}
