package device

import (
	"bytes"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

func ecdhChip(t *testing.T, v vendor, alg sigalg.ID) *Device {
	t.Helper()
	return newDevice(t, Config{Class: ClassInject, Algorithm: alg, RootKeyHashes: [][32]byte{v.hash},
		EncryptedChannel: true, Transport: TransportECDHP256})
}

func pkcs8(t *testing.T, alg sigalg.ID) []byte {
	t.Helper()
	suite, _ := alg.Suite()
	key, err := suite.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := sigalg.MarshalPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestECDHChannelInjectsAndEnrols programs a key of each suite family over
// a P-256 ECDH channel, wrapped in software as a soft key store does, and
// the chip boots, proves possession of exactly that key, and keeps it and
// its channel across a save and a load. Its state holds the ECDH transport
// key and no HPKE one.
func TestECDHChannelInjectsAndEnrols(t *testing.T) {
	v := newVendor(t, sigalg.Ed25519)
	for _, alg := range []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519, sigalg.MLDSA65} {
		t.Run(string(alg), func(t *testing.T) {
			d := ecdhChip(t, v, alg)
			if d.Transport() != TransportECDHP256 || d.Transport().IsPostQuantum() || !d.HasChannel() {
				t.Fatalf("transport %q", d.Transport())
			}
			w, err := d.ChannelWrapper()
			if err != nil {
				t.Fatal(err)
			}
			tk, ok := w.(*sealing.ECDHTransportKey)
			if !ok {
				t.Fatalf("ChannelWrapper is %T, want *sealing.ECDHTransportKey", w)
			}
			pub, _ := d.ECDHTransportKey()
			if !tk.ECDHTransportKey().Equal(pub) {
				t.Fatal("the wrapper holds another key than the chip's")
			}
			der := pkcs8(t, alg)
			blob, err := w.Wrap(der)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.InjectKey(blob, true); err != nil {
				t.Fatal(err)
			}
			bootIEF(t, d, v)
			nonce := []byte("station nonce")
			enr, err := d.Enrol(nonce)
			if err != nil {
				t.Fatal(err)
			}
			checkEnrolment(t, enr, nonce)
			key, _ := sigalg.ParsePrivateKey(der)
			spki, _ := sigalg.MarshalPublicKey(key.Public())
			if !bytes.Equal(enr.PublicKey, spki) || enr.Injection != InjectionEncrypted {
				t.Fatalf("enrolled %s with another key or injection %q", alg, enr.Injection)
			}
			path := filepath.Join(t.TempDir(), "dev.json")
			if err := d.Save(path); err != nil {
				t.Fatal(err)
			}
			state, _ := os.ReadFile(path)
			if !bytes.Contains(state, []byte(`"ecdh_transport_key"`)) || bytes.Contains(state, []byte(`"transport_key"`)) {
				t.Fatalf("state's bootloader section:\n%s", state)
			}
			again, err := Load(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if again.Transport() != TransportECDHP256 {
				t.Fatalf("loaded transport %q", again.Transport())
			}
			if err := again.Boot(); err != nil {
				t.Fatal(err)
			}
			second, err := again.Enrol([]byte("n2"))
			if err != nil || second.Identity != enr.Identity {
				t.Fatalf("identity after reload: %v", err)
			}
		})
	}
}

// TestChannelFormatRefusals is the station (or an attacker at the socket)
// sending the wrong thing: each chip takes only its own channel's format
// and says so, a blob for another chip or a changed byte is refused, and
// neither kind of chip hands out the other kind's transport key.
func TestChannelFormatRefusals(t *testing.T) {
	v := newVendor(t, sigalg.Ed25519)
	der := pkcs8(t, sigalg.Ed25519)
	ecdhDev := ecdhChip(t, v, sigalg.Ed25519)
	hpkeDev := newDevice(t, Config{Class: ClassInject, Algorithm: sigalg.Ed25519, RootKeyHashes: [][32]byte{v.hash}, EncryptedChannel: true})
	if hpkeDev.Transport() != DefaultTransport || !hpkeDev.Transport().IsPostQuantum() {
		t.Fatalf("default transport %q", hpkeDev.Transport())
	}

	hpkePub, _ := hpkeDev.TransportKey()
	sealed, _ := hpkePub.Wrap(der)
	if err := ecdhDev.InjectKey(sealed, true); !errors.Is(err, ErrWrongTransport) || !errors.Is(err, ErrWrongInjection) {
		t.Errorf("HPKE-sealed key to an ECDH chip = %v", err)
	}
	ecdhPub, _ := ecdhDev.ECDHTransportKey()
	wrapped, _ := sealing.WrapECDH(ecdhPub, der)
	if err := hpkeDev.InjectKey(wrapped, true); !errors.Is(err, ErrWrongTransport) {
		t.Errorf("ECDH-wrapped key to an HPKE chip = %v", err)
	}
	if err := ecdhDev.InjectKey(der, false); !errors.Is(err, ErrWrongInjection) {
		t.Errorf("clear key to an ECDH chip = %v", err)
	}
	other := ecdhChip(t, v, sigalg.Ed25519)
	otherPub, _ := other.ECDHTransportKey()
	forOther, _ := sealing.WrapECDH(otherPub, der)
	if err := ecdhDev.InjectKey(forOther, true); !errors.Is(err, ErrWrongInjection) || errors.Is(err, ErrWrongTransport) {
		t.Errorf("key wrapped to another chip = %v", err)
	}
	for _, i := range []int{0, 1, 40, 70, len(wrapped) - 1} {
		bad := bytes.Clone(wrapped)
		bad[i] ^= 0x80
		if err := ecdhDev.InjectKey(bad, true); !errors.Is(err, ErrWrongInjection) {
			t.Errorf("byte %d changed = %v", i, err)
		}
	}
	if !ecdhDev.NeedsKey() {
		t.Fatal("a refused key was kept")
	}
	wrongSuite, _ := sealing.WrapECDH(ecdhPub, pkcs8(t, sigalg.ECDSAP256))
	if err := ecdhDev.InjectKey(wrongSuite, true); !errors.Is(err, ErrWrongInjection) {
		t.Errorf("P-256 key into an Ed25519 chip = %v", err)
	}

	if _, err := ecdhDev.TransportKey(); !errors.Is(err, ErrWrongTransport) {
		t.Errorf("HPKE TransportKey of an ECDH chip = %v", err)
	}
	if _, err := hpkeDev.ECDHTransportKey(); !errors.Is(err, ErrWrongTransport) {
		t.Errorf("ECDHTransportKey of an HPKE chip = %v", err)
	}
	clearDev := newDevice(t, Config{Class: ClassInject, Algorithm: sigalg.Ed25519, RootKeyHashes: [][32]byte{v.hash}})
	if _, err := clearDev.ChannelWrapper(); !errors.Is(err, ErrNoChannel) {
		t.Errorf("ChannelWrapper without a channel = %v", err)
	}
	if clearDev.Transport() != "" {
		t.Errorf("transport of a chip without a channel: %q", clearDev.Transport())
	}
}

// TestTransportConfig: the channel's scheme is named as the command line
// names it, is refused for a chip without the channel, and an unknown
// name says which exist.
func TestTransportConfig(t *testing.T) {
	v := newVendor(t, sigalg.Ed25519)
	cfg := func(ch bool, tr Transport) Config {
		return Config{Class: ClassInject, Algorithm: sigalg.Ed25519, RootKeyHashes: [][32]byte{v.hash}, EncryptedChannel: ch, Transport: tr}
	}
	for name, want := range map[string]Transport{
		"x-wing": Transport(sealing.MLKEM768X25519), "ML-KEM-768": Transport(sealing.MLKEM768),
		"x25519": Transport(sealing.X25519), "p256-ecdh": TransportECDHP256,
	} {
		tr, err := ParseTransport(name)
		if err != nil || tr != want {
			t.Errorf("ParseTransport(%q) = %q, %v", name, tr, err)
		}
		if d := newDevice(t, cfg(true, tr)); d.Transport() != want {
			t.Errorf("chip made with %q has transport %q", name, d.Transport())
		}
	}
	if _, err := ParseTransport("rsa-oaep"); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "p256-ecdh") {
		t.Errorf("unknown transport = %v", err)
	}
	if _, err := New(cfg(false, TransportECDHP256)); !errors.Is(err, ErrConfig) {
		t.Errorf("transport without the channel = %v", err)
	}
	if _, err := New(cfg(true, "p384-ecdh")); !errors.Is(err, ErrConfig) {
		t.Errorf("unknown transport in Config = %v", err)
	}
}

// TestECDHLoaderState: a state whose bootloader holds both kinds of
// transport key, or an ECDH key that is not a P-256 scalar, is refused at
// load.
func TestECDHLoaderState(t *testing.T) {
	v := newVendor(t, sigalg.Ed25519)
	d := ecdhChip(t, v, sigalg.Ed25519)
	hpke := newDevice(t, Config{Class: ClassInject, Algorithm: sigalg.Ed25519, RootKeyHashes: [][32]byte{v.hash}, EncryptedChannel: true})
	mutate := func(f func(*loaderPart)) []byte {
		st := d.st
		l := *st.Loader
		f(&l)
		st.Loader = &l
		data, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	n := elliptic.P256().Params().N.Bytes()
	for what, data := range map[string][]byte{
		"both keys":        mutate(func(l *loaderPart) { l.TransportKey = hpke.st.Loader.TransportKey }),
		"no key":           mutate(func(l *loaderPart) { l.ECDHTransportKey = nil }),
		"zero scalar":      mutate(func(l *loaderPart) { l.ECDHTransportKey = make([]byte, 32) }),
		"scalar n":         mutate(func(l *loaderPart) { l.ECDHTransportKey = n }),
		"31-byte scalar":   mutate(func(l *loaderPart) { l.ECDHTransportKey = l.ECDHTransportKey[:31] }),
		"HPKE key garbled": mutate(func(l *loaderPart) { l.ECDHTransportKey, l.TransportKey = nil, []byte{1, 2, 3} }),
	} {
		if _, err := Unmarshal(data, nil); !errors.Is(err, ErrMalformedState) {
			t.Errorf("%s: %v", what, err)
		}
	}
	if _, err := Unmarshal(mutate(func(*loaderPart) {}), nil); err != nil {
		t.Errorf("the unchanged state: %v", err)
	}
}
