//go:build cgo

package pkcs11kms_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/keys/keystest"
	. "github.com/hallmark-iot/hallmark/internal/keys/pkcs11kms"
	"github.com/hallmark-iot/hallmark/internal/keys/pkcs11kms/softhsmtest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/miekg/pkcs11"
)

func mustOpen(t *testing.T, uri string, passphrase []byte) *Manager {
	t.Helper()
	m, err := Open(context.Background(), uri, passphrase)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func mustCreate(t *testing.T, m *Manager, name string, id sigalg.ID) {
	t.Helper()
	if _, err := m.CreateKey(context.Background(), keys.CreateKeyRequest{Name: name, Suite: id}); err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
}

// TestKeysNonExtractable attacks a Manager key through the token's own
// interface, as code running in the station could: the private value is
// not readable, not wrappable, and the flags cannot be turned back.
func TestKeysNonExtractable(t *testing.T) {
	tok := softhsmtest.New(t)
	m := mustOpen(t, tok.URI, nil)
	for _, id := range []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519} {
		t.Run(string(id), func(t *testing.T) {
			name := "ca-" + string(id)
			mustCreate(t, m, name, id)
			priv, err := PrivateHandle(m, name)
			if err != nil {
				t.Fatal(err)
			}
			err = Use(m, func(ctx *pkcs11.Ctx, sh pkcs11.SessionHandle) error {
				flags := map[uint]string{
					pkcs11.CKA_TOKEN: "CKA_TOKEN", pkcs11.CKA_PRIVATE: "CKA_PRIVATE", pkcs11.CKA_SENSITIVE: "CKA_SENSITIVE",
					pkcs11.CKA_ALWAYS_SENSITIVE: "CKA_ALWAYS_SENSITIVE", pkcs11.CKA_NEVER_EXTRACTABLE: "CKA_NEVER_EXTRACTABLE",
					pkcs11.CKA_EXTRACTABLE: "!CKA_EXTRACTABLE",
				}
				for typ, name := range flags {
					a, err := ctx.GetAttributeValue(sh, priv, []*pkcs11.Attribute{pkcs11.NewAttribute(typ, nil)})
					if err != nil {
						t.Errorf("read %s: %v", name, err)
						continue
					}
					want := byte(1)
					if strings.HasPrefix(name, "!") {
						want = 0
					}
					if len(a[0].Value) != 1 || a[0].Value[0] != want {
						t.Errorf("%s = %x, want %d", name, a[0].Value, want)
					}
				}
				if _, err := ctx.GetAttributeValue(sh, priv, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)}); !IsRV(err, pkcs11.CKR_ATTRIBUTE_SENSITIVE) {
					t.Errorf("reading CKA_VALUE: %v, want CKR_ATTRIBUTE_SENSITIVE", err)
				}
				for typ, v := range map[uint]bool{pkcs11.CKA_EXTRACTABLE: true, pkcs11.CKA_SENSITIVE: false} {
					if err := ctx.SetAttributeValue(sh, priv, []*pkcs11.Attribute{pkcs11.NewAttribute(typ, v)}); err == nil {
						t.Errorf("attribute %#x set to %v on a non-extractable key", typ, v)
					}
				}
				kek, err := ctx.GenerateKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, []*pkcs11.Attribute{
					pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
					pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32), pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
					pkcs11.NewAttribute(pkcs11.CKA_WRAP, true), pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
					pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false)})
				if err != nil {
					return err
				}
				defer ctx.DestroyObject(sh, kek)
				if w, err := ctx.WrapKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_WRAP_PAD, nil)}, kek, priv); err == nil {
					t.Errorf("the private key was wrapped under a key the attacker knows (%d bytes)", len(w))
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// sessionObjects counts the objects of the application that are not
// token objects: what a device-key generation may leave behind.
func sessionObjects(t *testing.T, m *Manager) int {
	t.Helper()
	var n int
	err := Use(m, func(ctx *pkcs11.Ctx, sh pkcs11.SessionHandle) error {
		if err := ctx.FindObjectsInit(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false)}); err != nil {
			return err
		}
		found, _, err := ctx.FindObjects(sh, 100)
		ctx.FindObjectsFinal(sh)
		n = len(found)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDeviceKeyLeavesNothing: every session object a device-key generation
// makes (device key pair, ephemeral key, ECDH and wrapping keys) is
// destroyed, on success and on failure.
func TestDeviceKeyLeavesNothing(t *testing.T) {
	m := mustOpen(t, softhsmtest.New(t).URI, nil)
	ctx := context.Background()
	chip := keystest.NewECDHTransport()
	cases := []struct {
		name  string
		suite sigalg.ID
		wrap  keys.Wrapper
		ok    bool
	}{
		{"ecdh", sigalg.ECDSAP256, chip, true},
		{"clear", sigalg.Ed25519, nil, true},
		// Fails at C_WrapKey, the last step, when the device key, E, Z
		// and K all exist.
		{"ed25519 not wrappable", sigalg.Ed25519, chip, false},
	}
	for _, c := range cases {
		_, _, err := m.GenerateDeviceKey(ctx, c.suite, c.wrap)
		if (err == nil) != c.ok {
			t.Fatalf("%s: GenerateDeviceKey: %v", c.name, err)
		}
		if n := sessionObjects(t, m); n != 0 {
			t.Fatalf("%s: %d session objects left in the token", c.name, n)
		}
	}
}

func TestWrongPIN(t *testing.T) {
	tok := softhsmtest.New(t)
	wrong := "wrong-" + tok.PIN
	pinFile := filepath.Join(t.TempDir(), "pin")
	os.WriteFile(pinFile, []byte(wrong), 0o600)
	uri := TokenURI(tok.Label, tok.Module, pinFile)
	_, err := Open(context.Background(), uri, nil)
	if !errors.Is(err, keys.ErrPassphrase) || !strings.Contains(err.Error(), "refused the PIN") {
		t.Fatalf("wrong PIN: %v, want ErrPassphrase saying the token refused it", err)
	}
	if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), tok.PIN) {
		t.Fatalf("the error shows a PIN: %v", err)
	}
	// With the token logged in by another Manager, C_Login would not look
	// at the PIN; the Manager still refuses a wrong one.
	good := mustOpen(t, tok.URI, nil)
	mustCreate(t, good, "k", sigalg.ECDSAP256)
	if _, err := Open(context.Background(), uri, nil); !errors.Is(err, keys.ErrPassphrase) || strings.Contains(err.Error(), wrong) {
		t.Fatalf("wrong PIN while logged in: %v, want ErrPassphrase", err)
	}
}

// TestSharedModule: Managers of one token share the module and the login;
// closing one leaves the other working, and the last close finalises.
func TestSharedModule(t *testing.T) {
	tok := softhsmtest.New(t)
	a := mustOpen(t, tok.URI, nil)
	b := mustOpen(t, tok.URI, nil)
	mustCreate(t, a, "shared", sigalg.Ed25519)
	signer, err := b.Signer(context.Background(), "shared")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := sigalg.Sign(signer, []byte("still open")); err != nil {
		t.Fatalf("b signs after a closed: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := LoadedModules(); n != 0 {
		t.Fatalf("%d modules still loaded after the last Manager closed", n)
	}
	// A new Manager initialises the module again and finds the key.
	c := mustOpen(t, tok.URI, nil)
	if _, err := c.PublicKey(context.Background(), "shared"); err != nil {
		t.Fatalf("after re-initialising: %v", err)
	}
}

func TestPINSources(t *testing.T) {
	tok := softhsmtest.New(t)
	noPIN := TokenURI(tok.Label, tok.Module, "")
	t.Run("env", func(t *testing.T) {
		t.Setenv(EnvPIN, tok.PIN)
		mustOpen(t, noPIN, []byte("not the pin")).Close()
	})
	t.Run("passphrase", func(t *testing.T) {
		t.Setenv(EnvPIN, "")
		mustOpen(t, noPIN, []byte(tok.PIN)).Close()
	})
	t.Run("none", func(t *testing.T) {
		t.Setenv(EnvPIN, "")
		_, err := Open(context.Background(), noPIN, nil)
		if !errors.Is(err, keys.ErrPassphrase) || !strings.Contains(err.Error(), "pin-source") {
			t.Fatalf("no PIN: %v", err)
		}
	})
	t.Run("file readable by others", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "pin")
		os.WriteFile(f, []byte(tok.PIN), 0o644)
		_, err := Open(context.Background(), TokenURI(tok.Label, tok.Module, f), nil)
		if err == nil || !strings.Contains(err.Error(), "chmod 600") || strings.Contains(err.Error(), tok.PIN) {
			t.Fatalf("world-readable PIN file: %v", err)
		}
	})
	t.Run("pin-value", func(t *testing.T) {
		_, err := Open(context.Background(), noPIN+"&pin-value="+tok.PIN, nil)
		if !errors.Is(err, ErrURI) || strings.Contains(err.Error(), tok.PIN) {
			t.Fatalf("pin-value: %v", err)
		}
	})
}

func TestTokenErrors(t *testing.T) {
	tok := softhsmtest.New(t)
	t.Run("unknown label", func(t *testing.T) {
		_, err := Open(context.Background(), TokenURI("no-such-token", tok.Module, tok.PINFile), nil)
		if !errors.Is(err, keys.ErrNotFound) || !strings.Contains(err.Error(), tok.Label) {
			t.Fatalf("unknown token: %v, want ErrNotFound listing the tokens", err)
		}
	})
	t.Run("no module", func(t *testing.T) {
		t.Setenv(EnvModule, "")
		_, err := Open(context.Background(), TokenURI(tok.Label, "", tok.PINFile), nil)
		if err == nil || !strings.Contains(err.Error(), EnvModule) || !strings.Contains(err.Error(), "libsofthsm2.so") {
			t.Fatalf("no module: %v", err)
		}
	})
	t.Run("module from env", func(t *testing.T) {
		t.Setenv(EnvModule, tok.Module)
		mustOpen(t, TokenURI(tok.Label, "", tok.PINFile), nil).Close()
	})
	t.Run("missing module", func(t *testing.T) {
		_, err := Open(context.Background(), TokenURI(tok.Label, "/nonexistent/libp11.so", tok.PINFile), nil)
		if err == nil || !strings.Contains(err.Error(), "no such file") || !strings.Contains(err.Error(), "softhsm2") {
			t.Fatalf("missing module: %v", err)
		}
	})
	t.Run("not a module", func(t *testing.T) {
		_, err := Open(context.Background(), TokenURI(tok.Label, tok.PINFile, tok.PINFile), nil)
		if err == nil || !strings.Contains(err.Error(), "cannot load") {
			t.Fatalf("a non-library as module: %v", err)
		}
	})
	t.Run("object in URI", func(t *testing.T) {
		_, err := Open(context.Background(), strings.Replace(tok.URI, "?", ";object=ca?", 1), nil)
		if !errors.Is(err, ErrURI) || !strings.Contains(err.Error(), "object=") {
			t.Fatalf("object= in a manager URI: %v", err)
		}
	})
	t.Run("ml-dsa", func(t *testing.T) {
		m := mustOpen(t, tok.URI, nil)
		_, err := m.CreateKey(context.Background(), keys.CreateKeyRequest{Name: "pq", Suite: sigalg.MLDSA65})
		if !errors.Is(err, keys.ErrUnsupported) || !strings.Contains(err.Error(), "CKM_ML_DSA_KEY_PAIR_GEN") ||
			!strings.Contains(err.Error(), tok.Label) {
			t.Fatalf("ML-DSA: %v, want ErrUnsupported naming CKM_ML_DSA_KEY_PAIR_GEN and the token", err)
		}
	})
}

// TestOtherProcess: a key this process makes is visible to another
// process using the same token (pkcs11-tool), and one that process makes
// is visible here, while this process's module stays initialised.
func TestOtherProcess(t *testing.T) {
	tool, err := exec.LookPath("pkcs11-tool")
	if err != nil {
		t.Fatal("pkcs11-tool not found: install the Debian package opensc")
	}
	tok := softhsmtest.New(t)
	m := mustOpen(t, tok.URI, nil)
	mustCreate(t, m, "made-here", sigalg.ECDSAP256)
	run := func(args ...string) string {
		cmd := exec.Command(tool, append([]string{"--module", tok.Module, "--token-label", tok.Label, "--login", "--pin", tok.PIN}, args...)...)
		cmd.Env = append(os.Environ(), tok.Env())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("pkcs11-tool %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := run("--list-objects", "--type", "privkey"); !strings.Contains(out, "made-here") {
		t.Fatalf("the other process does not see the key:\n%s", out)
	}
	run("--keypairgen", "--key-type", "EC:prime256v1", "--label", "made-there", "--usage-sign")
	if _, err := m.PublicKey(context.Background(), "made-there"); err != nil {
		t.Fatalf("a key made by another process: %v", err)
	}
}
