package device

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// vendor is a test vendor with one root key.
type vendor struct {
	key  crypto.Signer
	hash [32]byte
}

func newVendor(t testing.TB, id sigalg.ID) vendor {
	t.Helper()
	suite, _ := id.Suite()
	key, err := suite.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	spki, _ := sigalg.MarshalPublicKey(key.Public())
	return vendor{key: key, hash: sha256.Sum256(spki)}
}

// image builds an image of type typ and counter, signed by signers, and
// encrypted to classKey when it is not nil.
func image(t testing.TB, typ firmware.ImageType, counter uint32, payload []byte, classKey *sealing.PublicKey, signers ...crypto.Signer) []byte {
	t.Helper()
	img, err := firmware.New(firmware.Metadata{Type: typ, SecurityCounter: counter}, payload)
	if err != nil {
		t.Fatal(err)
	}
	if classKey != nil {
		if err := img.Encrypt(classKey); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range signers {
		if err := img.Sign(s); err != nil {
			t.Fatal(err)
		}
	}
	data, err := img.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func newDevice(t testing.TB, cfg Config) *Device {
	t.Helper()
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func bootIEF(t testing.TB, d *Device, v vendor) {
	t.Helper()
	if err := d.Program(image(t, firmware.TypeIEF, 0, IEFPayload(), nil, v.key)); err != nil {
		t.Fatal(err)
	}
	if err := d.Boot(); err != nil {
		t.Fatal(err)
	}
}

func checkEnrolment(t *testing.T, e *Enrolment, nonce []byte) {
	t.Helper()
	pub, err := sigalg.ParsePublicKey(e.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if identity.FromSPKI(e.PublicKey) != e.Identity {
		t.Fatal("identity is not SHA-256 of the public key")
	}
	suite, _ := sigalg.SuiteOf(pub)
	if err := suite.Verify(pub, identity.ProofMessage(identity.FactoryProofContext, nonce, e.Identity), e.Proof); err != nil {
		t.Fatalf("proof: %v", err)
	}
}

// injectKey programs a fresh key into an inject-class chip the way a
// station does.
func injectKey(t testing.TB, d *Device) {
	t.Helper()
	suite, _ := d.Algorithm().Suite()
	key, _ := suite.GenerateKey(rand.Reader)
	der, _ := sigalg.MarshalPrivateKey(key)
	blob := der
	if d.HasChannel() {
		w, err := d.ChannelWrapper()
		if err != nil {
			t.Fatal(err)
		}
		if blob, err = w.Wrap(der); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.InjectKey(blob, d.HasChannel()); err != nil {
		t.Fatal(err)
	}
}

// TestEveryClassEnrolsAndKeepsItsIdentity takes each class and suite through
// enrolment, a save and a load, and a second power-up.
func TestEveryClassEnrolsAndKeepsItsIdentity(t *testing.T) {
	v := newVendor(t, sigalg.ECDSAP256)
	type kind struct {
		class   Class
		channel bool
		want    string
	}
	kinds := []kind{{ClassPUF, false, InjectionNone}, {ClassKeygen, false, InjectionNone},
		{ClassInject, true, InjectionEncrypted}, {ClassInject, false, InjectionClear}}
	for _, k := range kinds {
		for _, alg := range sigalg.Names() {
			t.Run(string(k.class)+"/"+alg+"/"+k.want, func(t *testing.T) {
				d := newDevice(t, Config{Class: k.class, Algorithm: sigalg.ID(alg), RootKeyHashes: [][32]byte{v.hash}, EncryptedChannel: k.channel})
				if k.class == ClassInject {
					injectKey(t, d)
				}
				bootIEF(t, d, v)
				nonce := []byte("station nonce")
				first, err := d.Enrol(nonce)
				if err != nil {
					t.Fatal(err)
				}
				checkEnrolment(t, first, nonce)
				if first.Injection != k.want || first.Class != k.class || string(first.Algorithm) != alg {
					t.Fatalf("enrolment reports %s/%s/%s", first.Class, first.Algorithm, first.Injection)
				}
				path := filepath.Join(t.TempDir(), "dev.json")
				if err := d.Save(path); err != nil {
					t.Fatal(err)
				}
				again, err := Load(path, nil)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := again.Enrol(nonce); !errors.Is(err, ErrNotRunning) {
					t.Fatalf("enrol before boot = %v, want ErrNotRunning", err)
				}
				if err := again.Boot(); err != nil {
					t.Fatal(err)
				}
				second, err := again.Enrol([]byte("another nonce"))
				if err != nil {
					t.Fatal(err)
				}
				if second.Identity != first.Identity {
					t.Fatal("the device's identity changed across a power cycle")
				}
			})
		}
	}
}

// TestPUFStateHoldsNoKey searches a saved puf-class state, with a class key
// in its vault, for every form of the secrets the chip uses.
func TestPUFStateHoldsNoKey(t *testing.T) {
	v := newVendor(t, sigalg.Ed25519)
	classKey, _ := sealing.GenerateKey(sealing.DefaultKEM)
	for _, alg := range sigalg.Names() {
		d := newDevice(t, Config{Class: ClassPUF, Algorithm: sigalg.ID(alg), RootKeyHashes: [][32]byte{v.hash}, ClassKey: classKey})
		bootIEF(t, d, v)
		if _, err := d.Enrol([]byte("n")); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "dev.json")
		if err := d.Save(path); err != nil {
			t.Fatal(err)
		}
		state, _ := os.ReadFile(path)
		seed, err := d.reconstructPUF()
		if err != nil {
			t.Fatal(err)
		}
		key, _ := d.enrolmentKey()
		pkcs8, _ := sigalg.MarshalPrivateKey(key)
		classDER, _ := sealing.MarshalPrivateKey(classKey)
		secrets := map[string][]byte{"PUF seed": seed[:], "PKCS #8 key": pkcs8, "class key": classDER}
		// The suite-specific private value sits at the end of the PKCS #8.
		secrets["raw private key"] = pkcs8[len(pkcs8)-32:]
		for name, secret := range secrets {
			for form, enc := range map[string][]byte{
				"raw": secret, "hex": []byte(hex.EncodeToString(secret)),
				"base64": []byte(base64.StdEncoding.EncodeToString(secret)),
			} {
				if bytes.Contains(state, enc) {
					t.Errorf("%s: the state file holds the %s (%s)", alg, name, form)
				}
			}
		}
	}
}

func TestROMRefusals(t *testing.T) {
	v := newVendor(t, sigalg.ECDSAP256)
	other := newVendor(t, sigalg.ECDSAP256)
	pq := newVendor(t, sigalg.MLDSA65)
	classKey, _ := sealing.GenerateKey(sealing.DefaultKEM)
	otherClass, _ := sealing.GenerateKey(sealing.DefaultKEM)
	signed := image(t, firmware.TypeIEF, 0, IEFPayload(), nil, v.key)
	tamperedPayload := bytes.Clone(signed)
	tamperedPayload[bytes.Index(signed, IEFPayload())] ^= 1
	tamperedHeader := bytes.Clone(signed)
	tamperedHeader[8] ^= 1 // inside the header, after the magic
	cases := []struct {
		name  string
		cfg   Config
		image []byte
		want  error
	}{
		{"no image", Config{}, nil, ErrNoImage},
		{"unsigned", Config{}, image(t, firmware.TypeIEF, 0, IEFPayload(), nil), firmware.ErrUnsigned},
		{"wrong key", Config{}, image(t, firmware.TypeIEF, 0, IEFPayload(), nil, other.key), firmware.ErrUntrustedKey},
		{"tampered payload", Config{}, tamperedPayload, firmware.ErrMalformed},
		{"tampered header", Config{}, tamperedHeader, nil},
		{"hybrid policy, one signature", Config{RootKeyHashes: [][32]byte{v.hash, pq.hash}}, signed, firmware.ErrUntrustedKey},
		{"encrypted, no class key", Config{}, image(t, firmware.TypeIEF, 0, IEFPayload(), classKey.Public(), v.key), firmware.ErrEncryptedNoKey},
		{"encrypted to another class", Config{ClassKey: otherClass}, image(t, firmware.TypeIEF, 0, IEFPayload(), classKey.Public(), v.key), firmware.ErrDecrypt},
	}
	for _, tc := range cases {
		for _, class := range []Class{ClassPUF, ClassKeygen} {
			t.Run(tc.name+"/"+string(class), func(t *testing.T) {
				cfg := tc.cfg
				cfg.Class, cfg.Algorithm = class, sigalg.Ed25519
				if cfg.RootKeyHashes == nil {
					cfg.RootKeyHashes = [][32]byte{v.hash}
				}
				d := newDevice(t, cfg)
				if tc.image != nil {
					d.Program(tc.image)
				}
				err := d.Boot()
				if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
					t.Fatalf("Boot() = %v, want %v", err, tc.want)
				}
				if _, err := d.Enrol([]byte("n")); !errors.Is(err, ErrNotRunning) {
					t.Fatalf("enrol after a refused boot = %v", err)
				}
			})
		}
	}
}

func TestAntiRollback(t *testing.T) {
	v := newVendor(t, sigalg.Ed25519)
	d := newDevice(t, Config{Class: ClassKeygen, Algorithm: sigalg.Ed25519, RootKeyHashes: [][32]byte{v.hash}})
	d.Program(image(t, firmware.TypeApplication, 5, []byte("app v5"), nil, v.key))
	if err := d.Boot(); err != nil {
		t.Fatal(err)
	}
	if d.SecurityCounter() != 5 {
		t.Fatalf("OTP counter %d after booting counter 5", d.SecurityCounter())
	}
	d.Program(image(t, firmware.TypeApplication, 3, []byte("app v3"), nil, v.key))
	if err := d.Boot(); !errors.Is(err, firmware.ErrRollback) {
		t.Fatalf("Boot(counter 3 after 5) = %v, want ErrRollback", err)
	}
	d.Program(image(t, firmware.TypeApplication, 5, []byte("app v5.1"), nil, v.key))
	if err := d.Boot(); err != nil {
		t.Fatalf("same counter refused: %v", err)
	}
	if _, err := d.Enrol([]byte("n")); !errors.Is(err, ErrNotIEF) {
		t.Fatalf("enrol under application firmware = %v, want ErrNotIEF", err)
	}
}

func TestEncryptedIEFBootsWithClassKey(t *testing.T) {
	v := newVendor(t, sigalg.MLDSA65)
	classKey, _ := sealing.GenerateKey(sealing.DefaultKEM)
	for _, class := range []Class{ClassPUF, ClassKeygen} {
		d := newDevice(t, Config{Class: class, Algorithm: sigalg.MLDSA44, RootKeyHashes: [][32]byte{v.hash}, ClassKey: classKey})
		d.Program(image(t, firmware.TypeIEF, 1, IEFPayload(), classKey.Public(), v.key))
		if err := d.Boot(); err != nil {
			t.Fatalf("%s: %v", class, err)
		}
		if _, err := d.Enrol([]byte("n")); err != nil {
			t.Fatalf("%s: %v", class, err)
		}
	}
}

func TestInjectionRefusals(t *testing.T) {
	v := newVendor(t, sigalg.Ed25519)
	roots := [][32]byte{v.hash}
	p256, _ := sigalg.Lookup("ecdsa-p256")
	key, _ := p256.GenerateKey(rand.Reader)
	der, _ := sigalg.MarshalPrivateKey(key)

	withChannel := newDevice(t, Config{Class: ClassInject, Algorithm: sigalg.ECDSAP256, RootKeyHashes: roots, EncryptedChannel: true})
	if err := withChannel.InjectKey(der, false); !errors.Is(err, ErrWrongInjection) {
		t.Errorf("clear key to a chip with a channel = %v", err)
	}
	transport, _ := withChannel.TransportKey()
	sealed, _ := transport.Wrap(der)
	sealed[len(sealed)-1] ^= 1
	if err := withChannel.InjectKey(sealed, true); !errors.Is(err, ErrWrongInjection) {
		t.Errorf("tampered sealed key = %v", err)
	}
	bootIEF(t, withChannel, v)
	if _, err := withChannel.Enrol([]byte("n")); !errors.Is(err, ErrNoKey) {
		t.Errorf("enrol without an injected key = %v", err)
	}

	clear := newDevice(t, Config{Class: ClassInject, Algorithm: sigalg.Ed25519, RootKeyHashes: roots})
	if _, err := clear.TransportKey(); !errors.Is(err, ErrNoChannel) {
		t.Errorf("TransportKey without a channel = %v", err)
	}
	if err := clear.InjectKey(der, false); !errors.Is(err, ErrWrongInjection) {
		t.Errorf("P-256 key into an Ed25519 chip = %v", err)
	}
	injectKey(t, clear)
	if err := clear.InjectKey(der, false); !errors.Is(err, ErrKeyPresent) {
		t.Errorf("second key = %v", err)
	}
	pufChip := newDevice(t, Config{Class: ClassPUF, Algorithm: sigalg.Ed25519, RootKeyHashes: roots})
	if err := pufChip.InjectKey(der, false); !errors.Is(err, ErrWrongInjection) {
		t.Errorf("inject into a puf chip = %v", err)
	}
	if _, err := New(Config{Class: ClassPUF, Algorithm: sigalg.Ed25519, RootKeyHashes: roots, EncryptedChannel: true}); !errors.Is(err, ErrConfig) {
		t.Errorf("channel on a puf chip = %v", err)
	}
}

func TestOperationalKey(t *testing.T) {
	v := newVendor(t, sigalg.Ed25519)
	for _, class := range []Class{ClassPUF, ClassKeygen} {
		d := newDevice(t, Config{Class: class, Algorithm: sigalg.MLDSA65, RootKeyHashes: [][32]byte{v.hash}})
		if _, err := d.OperationalKey(sigalg.ECDSAP256); !errors.Is(err, ErrNotRunning) {
			t.Fatalf("%s: operational key before boot = %v", class, err)
		}
		bootIEF(t, d, v)
		op, err := d.OperationalKey(sigalg.ECDSAP256)
		if err != nil {
			t.Fatal(err)
		}
		enrolment, _ := d.enrolmentKey()
		if op.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(enrolment.Public()) {
			t.Fatalf("%s: operational key equals the enrolment key", class)
		}
		path := filepath.Join(t.TempDir(), "d.json")
		d.SetCredentials(Credentials{CertificateChain: []string{"leaf"}, CloudEndpoint: "mqtts://x"})
		d.Save(path)
		state, _ := os.ReadFile(path)
		der, _ := sigalg.MarshalPrivateKey(op)
		if class == ClassPUF && bytes.Contains(state, []byte(base64.StdEncoding.EncodeToString(der))) {
			t.Fatal("a puf chip stored its operational key")
		}
		again, _ := Load(path, nil)
		bootIEF(t, again, v)
		op2, err := again.OperationalKey(sigalg.ECDSAP256)
		if err != nil || !op2.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(op.Public()) {
			t.Fatalf("%s: operational key changed across a power cycle (%v)", class, err)
		}
		if c := again.Credentials(); c == nil || c.CloudEndpoint != "mqtts://x" {
			t.Fatalf("%s: credentials not kept: %+v", class, c)
		}
	}
}
