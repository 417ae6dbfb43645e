package sealing

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

func p256Key(tb testing.TB) *ecdh.PrivateKey {
	tb.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// devicePKCS8 makes one device key of each shape the format must carry: a
// small ECDSA key, an Ed25519 key and a 4 KiB ML-DSA-65 key.
func devicePKCS8(tb testing.TB) map[sigalg.ID][]byte {
	tb.Helper()
	out := map[sigalg.ID][]byte{}
	for _, id := range []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519, sigalg.MLDSA65} {
		suite, err := id.Suite()
		if err != nil {
			tb.Fatal(err)
		}
		key, err := suite.GenerateKey(rand.Reader)
		if err != nil {
			tb.Fatal(err)
		}
		der, err := sigalg.MarshalPrivateKey(key)
		if err != nil {
			tb.Fatal(err)
		}
		out[id] = der
	}
	return out
}

// TestECDHWrapRoundTrip wraps a PKCS #8 key of every suite family to a chip
// and unwraps it with the chip's key: the format does not care what it
// carries. The blob has the documented layout and size, each wrapping
// uses a fresh ephemeral key, and the software wrapper the station hands
// to key stores produces the same format.
func TestECDHWrapRoundTrip(t *testing.T) {
	chip := p256Key(t)
	tk, err := NewECDHTransportKey(chip.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if !tk.ECDHTransportKey().Equal(chip.PublicKey()) {
		t.Fatal("ECDHTransportKey returns another key")
	}
	for id, der := range devicePKCS8(t) {
		t.Run(string(id), func(t *testing.T) {
			blob, err := WrapECDH(chip.PublicKey(), der)
			if err != nil {
				t.Fatal(err)
			}
			if want := ECDHWrapOverhead + (len(der)+7)/8*8; len(blob) != want {
				t.Errorf("blob of %d bytes for %d of key, want %d", len(blob), len(der), want)
			}
			if blob[0] != ECDHWrapVersion || blob[1] != 0x04 || !IsECDHWrapped(blob) {
				t.Errorf("blob starts %x", blob[:2])
			}
			got, err := UnwrapECDH(chip, blob)
			if err != nil || !bytes.Equal(got, der) {
				t.Fatalf("unwrap: %v", err)
			}
			again, err := tk.Wrap(der)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(again[1:66], blob[1:66]) {
				t.Error("two wrappings share an ephemeral key")
			}
			if got, err := UnwrapECDH(chip, again); err != nil || !bytes.Equal(got, der) {
				t.Fatalf("unwrap of the software wrapper's blob: %v", err)
			}
		})
	}
}

// TestECDHUnwrapRefusals is the attacker at the programming socket: every
// changed byte, another chip's blob, a replaced ephemeral key (off the
// curve, compressed, the identity, another valid point), a wrong version
// and wrong lengths are all refused with ErrUnwrapECDH and no key.
func TestECDHUnwrapRefusals(t *testing.T) {
	chip, other := p256Key(t), p256Key(t)
	keys := devicePKCS8(t)
	refused := func(t *testing.T, what string, blob []byte) {
		t.Helper()
		got, err := UnwrapECDH(chip, blob)
		if !errors.Is(err, ErrUnwrapECDH) || got != nil {
			t.Errorf("%s: %x, %v; want ErrUnwrapECDH", what, got, err)
		}
	}
	for id, der := range keys {
		blob, err := WrapECDH(chip.PublicKey(), der)
		if err != nil {
			t.Fatal(err)
		}
		for i := range blob {
			bad := bytes.Clone(blob)
			bad[i] ^= 0x01
			refused(t, fmt.Sprintf("%s: byte %d changed", id, i), bad)
		}
		forOther, err := WrapECDH(other.PublicKey(), der)
		if err != nil {
			t.Fatal(err)
		}
		refused(t, string(id)+" wrapped to another chip", forOther)
	}
	blob, err := WrapECDH(chip.PublicKey(), keys[sigalg.Ed25519])
	if err != nil {
		t.Fatal(err)
	}
	withE := func(e []byte) []byte {
		return append(append([]byte{ECDHWrapVersion}, e...), blob[66:]...)
	}
	offCurve := bytes.Clone(blob[1:66])
	offCurve[64] ^= 0x01
	compressed := append([]byte{0x02 | blob[65]&1}, blob[2:34]...)
	for what, bad := range map[string][]byte{
		"version 2":                  append([]byte{2}, blob[1:]...),
		"version 0":                  append([]byte{0}, blob[1:]...),
		"E off the curve":            withE(offCurve),
		"E all zero (identity)":      withE(make([]byte, 65)),
		"E compressed":               append(append([]byte{ECDHWrapVersion}, compressed...), blob[66:]...),
		"E another valid point":      withE(p256Key(t).PublicKey().Bytes()),
		"truncated by one semiblock": blob[:len(blob)-8],
		"truncated by one byte":      blob[:len(blob)-1],
		"one byte longer":            append(bytes.Clone(blob), 0),
		"header only":                blob[:66],
		"empty":                      nil,
	} {
		refused(t, what, bad)
	}
	if _, err := UnwrapECDH(nil, blob); err == nil {
		t.Error("unwrapped without a key")
	}
}

// TestECDHWrapNeedsP256 refuses transport keys of another curve: the format
// is defined for P-256, which is what tokens implement.
func TestECDHWrapNeedsP256(t *testing.T) {
	x, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WrapECDH(x.PublicKey(), []byte("k")); err == nil {
		t.Error("wrapped to an X25519 key")
	}
	if _, err := NewECDHTransportKey(x.PublicKey()); err == nil {
		t.Error("an X25519 transport key")
	}
	if _, err := NewECDHTransportKey(nil); err == nil {
		t.Error("a nil transport key")
	}
	if _, err := UnwrapECDH(x, make([]byte, 90)); err == nil {
		t.Error("unwrapped with an X25519 key")
	}
	if _, err := WrapECDH(p256Key(t).PublicKey(), nil); err == nil {
		t.Error("wrapped nothing")
	}
}

// TestECDHWrapFormatsDistinct: the chip tells an ECDH blob from an HPKE
// one by its first bytes, never by trying both.
func TestECDHWrapFormatsDistinct(t *testing.T) {
	for _, kem := range allKEMs {
		sealed, err := testKey(t, kem).Public().Wrap([]byte("device key"))
		if err != nil {
			t.Fatal(err)
		}
		if IsECDHWrapped(sealed) {
			t.Errorf("HPKE data sealed to %s looks ECDH-wrapped", kem)
		}
	}
}

// TestECDHWrapOpenSSL unwraps a blob with OpenSSL alone, following the
// format step by step as a token would compute it: ECDH derive (the raw
// x-coordinate), AES-256-ECB of the context hash, then AES key wrap with
// padding. It is the independent check that the Go code computes the
// documented format and not merely its own inverse.
func TestECDHWrapOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatalf("openssl not found (%v): install the Debian package openssl", err)
	}
	chip := p256Key(t)
	der := devicePKCS8(t)[sigalg.ECDSAP256]
	blob, err := WrapECDH(chip.PublicKey(), der)
	if err != nil {
		t.Fatal(err)
	}
	eph, err := ecdh.P256().NewPublicKey(blob[1:66])
	if err != nil {
		t.Fatal(err)
	}
	chipDER, err := x509.MarshalPKCS8PrivateKey(chip)
	if err != nil {
		t.Fatal(err)
	}
	ephDER, err := x509.MarshalPKIXPublicKey(eph)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("chip.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: chipDER}))
	write("eph.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ephDER}))
	write("context", append(append([]byte(ECDHWrapInfo), chip.PublicKey().Bytes()...), blob[1:66]...))
	write("wrapped", blob[66:])
	openssl := func(args ...string) []byte {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), "openssl", args...)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("openssl %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	z := openssl("pkeyutl", "-derive", "-inkey", "chip.pem", "-peerkey", "eph.pem")
	write("d", openssl("dgst", "-sha256", "-binary", "context"))
	k := openssl("enc", "-aes-256-ecb", "-nopad", "-K", hex.EncodeToString(z), "-in", "d")
	got := openssl("enc", "-d", "-id-aes256-wrap-pad", "-K", hex.EncodeToString(k), "-iv", "A65959A6", "-in", "wrapped")
	if !bytes.Equal(got, der) {
		t.Fatalf("OpenSSL unwraps %x, want %x", got, der)
	}
}

// fuzzGenuine is WrapECDH(fuzzChip, "fuzz device key"), made once and kept
// so that every fuzzing worker knows the one blob that may unwrap (a fresh
// wrapping would differ in each process). TestECDHUnwrapKnownAnswer keeps
// it honest.
const fuzzGenuine = "0104576081c08478295e5079416859753007f6e82e2c04397799d0d18dca5b23fb39115dcb2bc7e3291ee2df192c215508019042cb835913f13e5bd9b807a89cecd668686da390aae60e0f212be6243f381b49672a302cd3e136"

const fuzzMessage = "fuzz device key"

// TestECDHUnwrapKnownAnswer unwraps a blob made by an earlier build, so a
// change to the format that keeps Wrap and Unwrap consistent with each
// other but not with chips already in the field is caught.
func TestECDHUnwrapKnownAnswer(t *testing.T) {
	got, err := UnwrapECDH(fuzzChip(t), unhex(t, fuzzGenuine))
	if err != nil || string(got) != fuzzMessage {
		t.Fatalf("known blob unwraps to %q, %v", got, err)
	}
}

// FuzzUnwrapECDH feeds arbitrary blobs to a chip. KWP's check makes a
// forgery out of reach, so nothing but the genuine blob may unwrap, and it
// unwraps to what was wrapped.
func FuzzUnwrapECDH(f *testing.F) {
	chip := fuzzChip(f)
	genuine, err := hex.DecodeString(fuzzGenuine)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(genuine)
	f.Add(genuine[:len(genuine)-8])
	f.Add(append([]byte{2}, genuine[1:]...))
	f.Add([]byte{ECDHWrapVersion, 0x04})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, blob []byte) {
		got, err := UnwrapECDH(chip, blob)
		if err != nil {
			if !errors.Is(err, ErrUnwrapECDH) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if !bytes.Equal(blob, genuine) || string(got) != fuzzMessage {
			t.Fatalf("unwrapped forged blob to %q", got)
		}
	})
}

// fuzzChip is a fixed chip key, the one fuzzGenuine is wrapped to.
func fuzzChip(tb testing.TB) *ecdh.PrivateKey {
	tb.Helper()
	k, err := ecdh.P256().NewPrivateKey(bytes.Repeat([]byte{0x11}, 32))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// The benchmarks wrap an Ed25519 PKCS #8 (48 bytes): the cost is the two
// P-256 operations (key generation and ECDH) on the way in, one on the way out.
func BenchmarkWrapECDH(b *testing.B) {
	chip, der := fuzzChip(b), devicePKCS8(b)[sigalg.Ed25519]
	for b.Loop() {
		if _, err := WrapECDH(chip.PublicKey(), der); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnwrapECDH(b *testing.B) {
	chip, der := fuzzChip(b), devicePKCS8(b)[sigalg.Ed25519]
	blob, err := WrapECDH(chip.PublicKey(), der)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := UnwrapECDH(chip, blob); err != nil {
			b.Fatal(err)
		}
	}
}

// TestECDHUnwrapDropsTokenPadding: SoftHSM2 2.6 wraps a private key with
// zero bytes appended to its PKCS #8 (inside KWP's length), so the chip
// must get the DER alone; other trailing bytes are left for the PKCS #8
// parser to refuse.
func TestECDHUnwrapDropsTokenPadding(t *testing.T) {
	chip := p256Key(t)
	der := devicePKCS8(t)[sigalg.ECDSAP256]
	for _, tc := range []struct {
		name    string
		trailer []byte
		want    []byte
	}{
		{"three zeros", []byte{0, 0, 0}, der},
		{"seven zeros", make([]byte, 7), der},
		{"eight zeros", make([]byte, 8), append(bytes.Clone(der), make([]byte, 8)...)},
		{"non-zero", []byte{0, 1}, append(bytes.Clone(der), 0, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blob, err := WrapECDH(chip.PublicKey(), append(bytes.Clone(der), tc.trailer...))
			if err != nil {
				t.Fatal(err)
			}
			got, err := UnwrapECDH(chip, blob)
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("unwrap: %d bytes (%v), want %d", len(got), err, len(tc.want))
			}
		})
	}
}
