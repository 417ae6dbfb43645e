package firmwarecmd_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/cli/firmwarecmd"
)

// fwKit is a directory with the keys of a hybrid vendor (ECDSA P-256 and
// ML-DSA-65 roots), a stranger's key, two device-class keys and a payload.
type fwKit struct {
	dir                              string
	ecdsa, ecdsaPub, mldsa, mldsaPub string
	stranger                         string
	class, classPub, otherClass      string
	payload                          []byte
	payloadFile                      string
}

func newFWKit(t *testing.T) *fwKit {
	t.Helper()
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	k := &fwKit{
		dir: dir, ecdsa: p("ecdsa.pem"), ecdsaPub: p("ecdsa.pub"), mldsa: p("mldsa.pem"), mldsaPub: p("mldsa.pub"),
		stranger: p("stranger.pem"), class: p("class.pem"), classPub: p("class.pub"), otherClass: p("other-class.pem"),
		payload: bytes.Repeat([]byte("firmware code "), 1000), payloadFile: p("app.bin"),
	}
	clitest.MustRun(t, nil, "keys", "generate", "-a", "ecdsa-p256", "-o", k.ecdsa, "--pub-out", k.ecdsaPub)
	clitest.MustRun(t, nil, "keys", "generate", "-a", "ml-dsa-65", "-o", k.mldsa, "--pub-out", k.mldsaPub)
	clitest.MustRun(t, nil, "keys", "generate", "-a", "ecdsa-p256", "-o", k.stranger)
	clitest.MustRun(t, nil, "firmware", "class-key", "generate", "-o", k.class, "--pub-out", k.classPub)
	clitest.MustRun(t, nil, "firmware", "class-key", "generate", "--kem", "x25519", "-o", k.otherClass)
	if err := os.WriteFile(k.payloadFile, k.payload, 0o644); err != nil {
		t.Fatal(err)
	}
	return k
}

func (k *fwKit) path(name string) string { return filepath.Join(k.dir, name) }

// hybridRoots are the verify flags of a device trusting both vendor roots.
func (k *fwKit) hybridRoots() []string { return []string{"--root", k.ecdsaPub, "--root", k.mldsaPub} }

func TestFirmwareRoundTrip(t *testing.T) {
	k := newFWKit(t)
	if info, err := os.Stat(k.class); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("class key file mode: %v %v", info.Mode(), err)
	}
	image, out := k.path("app.hmfw"), k.path("out.bin")
	clitest.MustRun(t, nil, "firmware", "sign", "--in", k.payloadFile, "--type", "app", "--version", "1.4.0", "--counter", "5",
		"--key", k.ecdsa, "--key", k.mldsa, "--encrypt-to", k.classPub, "-o", image)
	data, _ := os.ReadFile(image)
	if bytes.Contains(data, k.payload[:64]) {
		t.Fatal("the encrypted image holds the plaintext")
	}
	summary := clitest.MustRun(t, nil, append([]string{"firmware", "verify", "--image", image, "--min-counter", "5",
		"--class-key", k.class, "--payload-out", out}, k.hybridRoots()...)...)
	if !strings.HasPrefix(summary, "verified: app 1.4.0, security counter 5\n") || strings.Count(summary, "root:") != 2 {
		t.Fatalf("summary %q", summary)
	}
	got, _ := os.ReadFile(out)
	if info, _ := os.Stat(out); !bytes.Equal(got, k.payload) || info.Mode().Perm() != 0o600 {
		t.Fatal("payload-out differs or is not private")
	}

	// inspect needs no key and names both signers by their identity.
	var report firmwarecmd.ImageReport
	if err := json.Unmarshal([]byte(clitest.MustRun(t, nil, "firmware", "inspect", "--image", image, "--json")), &report); err != nil {
		t.Fatal(err)
	}
	ecdsaID := strings.TrimSpace(clitest.MustRun(t, nil, "keys", "identity", k.ecdsaPub))
	fp := strings.Fields(clitest.MustRun(t, nil, "firmware", "class-key", "fingerprint", k.classPub))[0]
	if report.Type != "app" || report.Version != "1.4.0" || report.SecurityCounter != 5 || len(report.Signatures) != 2 ||
		report.Signatures[0].Signer.String() != ecdsaID || report.Encryption == nil || report.Encryption.Recipient != fp {
		t.Fatalf("inspect: %+v", report)
	}
	text := clitest.MustRun(t, data, "firmware", "inspect")
	for _, want := range []string{"type:", "app", "ml-kem-768-x25519", fp, ecdsaID, "ml-dsa-65", "signatures:"} {
		if !strings.Contains(text, want) {
			t.Fatalf("inspect text lacks %q:\n%s", want, text)
		}
	}

	// A device that stores only the hashes: --root-id, image on stdin.
	mldsaID := strings.TrimSpace(clitest.MustRun(t, nil, "keys", "identity", k.mldsaPub))
	clitest.MustRun(t, data, "firmware", "verify", "--root-id", ecdsaID, "--root-id", mldsaID, "--class-key", k.class)
}

// The signing services of a hybrid vendor sign one after the other, after
// the payload was encrypted by whoever builds it.
func TestFirmwareEncryptThenSignInSteps(t *testing.T) {
	k := newFWKit(t)
	unsigned, one, two := k.path("unsigned.hmfw"), k.path("one.hmfw"), k.path("two.hmfw")
	clitest.MustRun(t, nil, "firmware", "encrypt", "--in", k.payloadFile, "--type", "ief", "--to", k.classPub, "-o", unsigned)
	clitest.MustRun(t, nil, "firmware", "sign", "--image", unsigned, "--key", k.ecdsa, "-o", one)
	// Signing to standard output, image from standard input.
	oneData, _ := os.ReadFile(one)
	twoData := clitest.MustRun(t, oneData, "firmware", "sign", "--image", "-", "--key", k.mldsa)
	os.WriteFile(two, []byte(twoData), 0o644)
	// Verify with the plaintext going to standard output: the summary moves
	// to standard error.
	code, stdout, stderr := clitest.Run(t, nil, append([]string{"firmware", "verify", "--image", two, "--class-key", k.class, "--payload-out", "-"}, k.hybridRoots()...)...)
	if code != 0 || stdout != string(k.payload) || !strings.HasPrefix(stderr, "verified: ief 0.0.0, security counter 0") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

// fixDigest rewrites the payload SHA-256 of an image after its payload was
// changed, as someone with the signing key but not the class key might.
func fixDigest(data []byte) {
	h := int(binary.BigEndian.Uint16(data[6:]))
	p := int(binary.BigEndian.Uint32(data[20:]))
	sum := sha256.Sum256(data[h : h+p])
	copy(data[h-32:h], sum[:])
}

func TestFirmwareVerifyRefusals(t *testing.T) {
	k := newFWKit(t)
	sign := func(name string, args ...string) string {
		out := k.path(name)
		clitest.MustRun(t, nil, append([]string{"firmware", "sign", "--in", k.payloadFile, "--type", "app", "--counter", "5", "-o", out}, args...)...)
		return out
	}
	write := func(name string, data []byte) string {
		os.WriteFile(k.path(name), data, 0o644)
		return k.path(name)
	}
	hybrid := sign("hybrid.hmfw", "--key", k.ecdsa, "--key", k.mldsa)
	encrypted := sign("encrypted.hmfw", "--key", k.ecdsa, "--key", k.mldsa, "--encrypt-to", k.classPub)
	hybridData, _ := os.ReadFile(hybrid)
	h := int(binary.BigEndian.Uint16(hybridData[6:]))
	unsigned := k.path("unsigned.hmfw")
	clitest.MustRun(t, nil, "firmware", "encrypt", "--in", k.payloadFile, "--type", "app", "--to", k.classPub, "-o", unsigned)
	corrupt, _ := os.ReadFile(unsigned)
	corrupt[h+1200] ^= 1
	fixDigest(corrupt)
	corruptSigned := k.path("corrupt-signed.hmfw")
	clitest.MustRun(t, nil, "firmware", "sign", "--image", write("corrupt.hmfw", corrupt), "--key", k.ecdsa, "--key", k.mldsa, "-o", corruptSigned)
	flipped := func(name string, i int) string {
		d := bytes.Clone(hybridData)
		d[i] ^= 1
		return write(name, d)
	}

	cases := []struct {
		name  string
		image string
		extra []string
		want  string
	}{
		{"unsigned", unsigned, []string{"--class-key", k.class}, "image is not signed"},
		{"tampered payload", flipped("payload.hmfw", h+10), nil, "malformed image: payload does not match"},
		{"tampered header", flipped("header.hmfw", 19), nil, "does not verify (invalid signature)"},
		{"tampered signature", flipped("sig.hmfw", len(hybridData)-5), nil, "ml-dsa-65 signature by root key"},
		{"signed by a stranger", sign("stranger.hmfw", "--key", k.stranger), nil, "trusted root signature missing"},
		{"ML-DSA signature missing", sign("ecdsa-only.hmfw", "--key", k.ecdsa), nil, "no signature by root key"},
		{"rolled back", hybrid, []string{"--min-counter", "6"}, "security counter 5 is below the device's 6 (rollback refused)"},
		{"encrypted to another class", encrypted, []string{"--class-key", k.otherClass}, "cannot decrypt payload: encrypted to ml-kem-768-x25519 class key"},
		{"encrypted, no class key", encrypted, nil, "payload is encrypted and the device has no class key"},
		{"ciphertext corrupted before signing", corruptSigned, []string{"--class-key", k.class}, "cannot decrypt payload: ciphertext does not authenticate"},
		{"not an image", k.payloadFile, nil, "malformed image"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := k.path("payload-" + strings.ReplaceAll(tc.name, " ", "-"))
			args := append([]string{"firmware", "verify", "--image", tc.image, "--payload-out", out}, k.hybridRoots()...)
			code, stdout, stderr := clitest.Run(t, nil, append(args, tc.extra...)...)
			if code != 1 || stdout != "" || strings.Count(stderr, "\n") != 1 ||
				!strings.HasPrefix(stderr, "hallmark: verify image: ") || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %q", code, stdout, stderr, tc.want)
			}
			if cmdline.FileExists(out) {
				t.Fatal("a refused image's payload was written")
			}
		})
	}
}

func TestFirmwareRefusesAndWritesNothing(t *testing.T) {
	k := newFWKit(t)
	signed := k.path("signed.hmfw")
	clitest.MustRun(t, nil, "firmware", "sign", "--in", k.payloadFile, "--type", "app", "--key", k.ecdsa, "-o", signed)
	existing, empty := k.path("existing.pub"), k.path("empty.bin")
	os.WriteFile(existing, []byte("keep me"), 0o644)
	os.WriteFile(empty, nil, 0o644)
	out := k.path("out.hmfw")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"encrypt a signed image", []string{"firmware", "encrypt", "--image", signed, "--to", k.classPub, "-o", out}, "image is already signed"},
		{"encrypt-to a signed image", []string{"firmware", "sign", "--image", signed, "--key", k.mldsa, "--encrypt-to", k.classPub, "-o", out}, "image is already signed"},
		{"sign twice with one key", []string{"firmware", "sign", "--image", signed, "--key", k.ecdsa, "-o", out}, "already carries a signature"},
		{"sign with a public key", []string{"firmware", "sign", "--image", signed, "--key", k.mldsaPub, "-o", out}, "signing needs the private key"},
		{"sign with a class key", []string{"firmware", "sign", "--image", signed, "--key", k.class, "-o", out}, "read key"},
		{"encrypt to a signing key", []string{"firmware", "encrypt", "--in", k.payloadFile, "--type", "app", "--to", k.ecdsaPub, "-o", out}, "malformed KEM key"},
		{"decrypt with a public class key", []string{"firmware", "verify", "--image", signed, "--root", k.ecdsaPub, "--class-key", k.classPub}, "private key is needed"},
		{"payload missing", []string{"firmware", "sign", "--in", k.path("nope.bin"), "--type", "app", "--key", k.ecdsa, "-o", out}, "no such file"},
		{"empty payload", []string{"firmware", "sign", "--in", empty, "--type", "app", "--key", k.ecdsa, "-o", out}, "payload of 0 bytes"},
		{"output exists", []string{"firmware", "sign", "--image", signed, "--key", k.mldsa, "-o", existing}, "file exists"},
		{"class key output exists", []string{"firmware", "class-key", "generate", "-o", out, "--pub-out", existing}, "file exists"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := clitest.Run(t, nil, tc.args...)
			if code != 1 || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %q", code, stdout, stderr, tc.want)
			}
			if cmdline.FileExists(out) {
				t.Fatal("a refused command wrote its output")
			}
			if kept, _ := os.ReadFile(existing); string(kept) != "keep me" {
				t.Fatal("a refused command replaced an existing file")
			}
		})
	}
}

func TestFirmwareUsageErrors(t *testing.T) {
	k := newFWKit(t)
	signed := k.path("signed.hmfw")
	clitest.MustRun(t, nil, "firmware", "sign", "--in", k.payloadFile, "--type", "ief", "--key", k.ecdsa, "-o", signed)
	for name, args := range map[string][]string{
		"no --in or --image":  {"firmware", "sign", "--key", k.ecdsa},
		"--in and --image":    {"firmware", "sign", "--in", k.payloadFile, "--image", signed, "--key", k.ecdsa},
		"--type on --image":   {"firmware", "sign", "--image", signed, "--type", "app", "--key", k.mldsa},
		"no --type":           {"firmware", "sign", "--in", k.payloadFile, "--key", k.ecdsa},
		"unknown type":        {"firmware", "sign", "--in", k.payloadFile, "--type", "bootloader", "--key", k.ecdsa},
		"bad version":         {"firmware", "sign", "--in", k.payloadFile, "--type", "app", "--version", "1.2", "--key", k.ecdsa},
		"negative counter":    {"firmware", "sign", "--in", k.payloadFile, "--type", "app", "--counter", "-1", "--key", k.ecdsa},
		"no --key":            {"firmware", "sign", "--in", k.payloadFile, "--type", "app"},
		"no --to":             {"firmware", "encrypt", "--in", k.payloadFile, "--type", "app"},
		"two inputs on stdin": {"firmware", "sign", "--in", "-", "--type", "app", "--key", "-"},
		"no root":             {"firmware", "verify", "--image", signed},
		"bad root id":         {"firmware", "verify", "--image", signed, "--root-id", "abc"},
		"unknown KEM":         {"firmware", "class-key", "generate", "--kem", "rsa"},
		"unknown subcommand":  {"firmware", "decrypt"},
	} {
		t.Run(name, func(t *testing.T) {
			code, _, stderr := clitest.Run(t, nil, args...)
			if code != 2 || strings.Count(stderr, "\n") != 1 {
				t.Fatalf("exit %d, stderr %q; want a usage error", code, stderr)
			}
		})
	}
}

func TestClassKeyPublic(t *testing.T) {
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "c.pem"), filepath.Join(dir, "c.pub")
	clitest.MustRun(t, nil, "firmware", "class-key", "generate", "--kem", "ml-kem-768", "-o", priv, "--pub-out", pub)
	want, _ := os.ReadFile(pub)
	if got := clitest.MustRun(t, nil, "firmware", "class-key", "public", priv); got != string(want) {
		t.Fatal("class-key public differs from --pub-out")
	}
	if a, b := clitest.MustRun(t, nil, "firmware", "class-key", "fingerprint", priv), clitest.MustRun(t, want, "firmware", "class-key", "fingerprint"); a != b || !strings.HasSuffix(a, "  ml-kem-768\n") {
		t.Fatalf("fingerprints %q and %q", a, b)
	}
}

// A vendor retiring its classical root: the image that retires slot 0 is
// signed under both roots and says so; a device that has burned slot 0
// boots an image signed under the ML-DSA root alone, and refuses one
// signed under the retired root alone.
func TestFirmwareRetireSlot(t *testing.T) {
	k := newFWKit(t)
	retiring, pqOnly, classicalOnly := k.path("retire.hmfw"), k.path("pq.hmfw"), k.path("classical.hmfw")
	clitest.MustRun(t, nil, "firmware", "sign", "--in", k.payloadFile, "--type", "app", "--version", "2.0.0", "--counter", "7",
		"--retire-slot", "0", "--key", k.ecdsa, "--key", k.mldsa, "-o", retiring)
	var report firmwarecmd.ImageReport
	if err := json.Unmarshal([]byte(clitest.MustRun(t, nil, "firmware", "inspect", "--image", retiring, "--json")), &report); err != nil {
		t.Fatal(err)
	}
	if report.Format != 2 || len(report.RetireSlots) != 1 || report.RetireSlots[0] != 0 {
		t.Fatalf("inspect of a retiring image: format %d, retire %v", report.Format, report.RetireSlots)
	}
	if text := clitest.MustRun(t, nil, "firmware", "inspect", "--image", retiring); !strings.Contains(text, "retires root slots:  0") {
		t.Fatalf("inspect text lacks the retirement:\n%s", text)
	}
	clitest.MustRun(t, nil, append([]string{"firmware", "verify", "--image", retiring}, k.hybridRoots()...)...)

	clitest.MustRun(t, nil, "firmware", "sign", "--in", k.payloadFile, "--type", "app", "--version", "2.0.1", "--counter", "7",
		"--key", k.mldsa, "-o", pqOnly)
	clitest.MustRun(t, nil, "firmware", "sign", "--in", k.payloadFile, "--type", "app", "--version", "2.0.1", "--counter", "7",
		"--key", k.ecdsa, "-o", classicalOnly)
	retired := append([]string{"--retired-slot", "0"}, k.hybridRoots()...)
	clitest.MustRun(t, nil, append([]string{"firmware", "verify", "--image", pqOnly}, retired...)...)
	if code, _, stderr := clitest.Run(t, nil, append([]string{"firmware", "verify", "--image", classicalOnly}, retired...)...); code == 0 ||
		!strings.Contains(stderr, "retired") {
		t.Fatalf("an image signed under the retired root alone: exit %d, %q", code, stderr)
	}
	// Without the retirement the ML-DSA-only image lacks the ECDSA root.
	if code, _, _ := clitest.Run(t, nil, append([]string{"firmware", "verify", "--image", pqOnly}, k.hybridRoots()...)...); code == 0 {
		t.Fatal("an image missing a live root's signature verified")
	}
	if code, _, stderr := clitest.Run(t, nil, "firmware", "sign", "--in", k.payloadFile, "--type", "app", "--retire-slot", "4",
		"--key", k.ecdsa, "-o", k.path("bad.hmfw")); code != 2 || !strings.Contains(stderr, "slots 0 to 3") {
		t.Fatalf("--retire-slot 4: exit %d, %q", code, stderr)
	}
}
