// Package keystest owns the contract every keys.Manager backend must meet:
// a test suite that the software store runs and that a PKCS #11 or TPM
// backend must run unchanged. It checks behaviour callers rely on (every
// suite signs and verifies, names are policed, duplicates and unknown names
// fail with the right sentinel, keys survive a reopen), not any backend's
// storage.
package keystest

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Config says what a backend offers. The zero Config is a backend with
// every suite of sigalg.All.
type Config struct {
	// Suites are the signature suites the backend makes keys of; CreateKey
	// of any other known suite must fail with keys.ErrUnsupported and a
	// message naming the suite, and leave nothing behind. Empty means all.
	Suites []sigalg.ID

	// The rest describe GenerateDeviceKey, for a backend that is a
	// keys.DeviceKeyGenerator.

	// ECDHInside says the backend wraps device keys to a
	// keys.ECDHTransport itself, inside the store (a PKCS #11 token), so
	// the transport's software Wrap, which would see the plaintext, must
	// never be called. Without it, the backend must call Wrap exactly once.
	ECDHInside bool
	// ECDHSuites are the suites whose device keys the backend can wrap to
	// a keys.ECDHTransport; for the others GenerateDeviceKey with one must
	// fail with keys.ErrUnsupported and export nothing. Empty means all
	// of Suites.
	ECDHSuites []sigalg.ID
	// ECDHOnly says the backend refuses, with keys.ErrUnsupported and
	// without calling Wrap, every non-nil keys.Wrapper that is not a
	// keys.ECDHTransport: its device keys would have to leave the store in
	// the clear to be wrapped on the host.
	ECDHOnly bool
}

// supported returns the suites cfg offers, in sigalg.All order, and the
// known suites it does not.
func (cfg Config) supported() (yes, no []sigalg.Suite) {
	for _, s := range sigalg.All() {
		if len(cfg.Suites) == 0 || slices.Contains(cfg.Suites, s.ID()) {
			yes = append(yes, s)
		} else {
			no = append(no, s)
		}
	}
	return yes, no
}

// Run checks the Manager contract for a backend with every suite.
// newManager returns a Manager over a new, empty store; Run closes it. If
// the Manager is also a keys.DeviceKeyGenerator, that capability is
// checked too.
func Run(t *testing.T, newManager func(t *testing.T) keys.Manager) {
	RunWith(t, Config{}, newManager)
}

// RunWith is Run for a backend that offers what cfg says.
func RunWith(t *testing.T, cfg Config, newManager func(t *testing.T) keys.Manager) {
	suites, unsupported := cfg.supported()
	if len(suites) == 0 {
		t.Fatal("keystest: Config offers no suite")
	}
	t.Run("EverySuite", func(t *testing.T) { testEverySuite(t, suites, newManager(t)) })
	t.Run("UnsupportedSuites", func(t *testing.T) { testUnsupported(t, unsupported, newManager(t)) })
	t.Run("Names", func(t *testing.T) { testNames(t, suites[0].ID(), newManager(t)) })
	t.Run("Errors", func(t *testing.T) { testErrors(t, suites[0].ID(), newManager(t)) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, suites[0].ID(), newManager(t)) })
	t.Run("Closed", func(t *testing.T) { testClosed(t, suites[0].ID(), newManager(t)) })
	t.Run("DeviceKeys", func(t *testing.T) { testDeviceKeys(t, cfg, suites, newManager(t)) })
}

// RunPersistence checks that keys outlive the Manager that made them, for
// a backend with every suite. newStore makes a new, empty backing store
// and returns a function that opens a Manager on it; that function is
// called more than once.
func RunPersistence(t *testing.T, newStore func(t *testing.T) (open func() (keys.Manager, error))) {
	RunPersistenceWith(t, Config{}, newStore)
}

// RunPersistenceWith is RunPersistence for a backend that offers what cfg
// says.
func RunPersistenceWith(t *testing.T, cfg Config, newStore func(t *testing.T) (open func() (keys.Manager, error))) {
	ctx := context.Background()
	suites, _ := cfg.supported()
	open := newStore(t)
	m := mustOpen(t, open)
	pubs := map[string]crypto.PublicKey{}
	for _, suite := range suites {
		name := keyName(suite.ID())
		pubs[name] = mustCreate(t, m, name, suite.ID())
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	m = mustOpen(t, open)
	defer m.Close()
	for _, suite := range suites {
		t.Run(string(suite.ID()), func(t *testing.T) {
			name := keyName(suite.ID())
			pub, err := m.PublicKey(ctx, name)
			if err != nil {
				t.Fatalf("PublicKey after reopen: %v", err)
			}
			assertSameKey(t, pubs[name], pub)
			signAndVerify(t, m, name, pubs[name])
			if _, err := m.CreateKey(ctx, keys.CreateKeyRequest{Name: name, Suite: suite.ID()}); !errors.Is(err, keys.ErrExists) {
				t.Fatalf("CreateKey of a name made before reopen: %v, want ErrExists", err)
			}
		})
	}
}

func mustOpen(t *testing.T, open func() (keys.Manager, error)) keys.Manager {
	t.Helper()
	m, err := open()
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return m
}

func keyName(id sigalg.ID) string { return "key-" + string(id) }

func mustCreate(t *testing.T, m keys.Manager, name string, suite sigalg.ID) crypto.PublicKey {
	t.Helper()
	pub, err := m.CreateKey(context.Background(), keys.CreateKeyRequest{Name: name, Suite: suite})
	if err != nil {
		t.Fatalf("CreateKey(%s, %s): %v", name, suite, err)
	}
	got, err := sigalg.SuiteOf(pub)
	if err != nil || got.ID() != suite {
		t.Fatalf("CreateKey(%s, %s) returned a key of suite %v (%v)", name, suite, got, err)
	}
	return pub
}

func assertSameKey(t *testing.T, want, got crypto.PublicKey) {
	t.Helper()
	a, errA := sigalg.MarshalPublicKey(want)
	b, errB := sigalg.MarshalPublicKey(got)
	if errA != nil || errB != nil || !bytes.Equal(a, b) {
		t.Fatalf("public keys differ (%v, %v)", errA, errB)
	}
}

// signAndVerify signs through sigalg.Sign and checks the signature
// with sigalg, the way every consumer will, and that it binds the message.
func signAndVerify(t *testing.T, m keys.Manager, name string, pub crypto.PublicKey) {
	t.Helper()
	signer, err := m.Signer(context.Background(), name)
	if err != nil {
		t.Fatalf("Signer(%s): %v", name, err)
	}
	assertSameKey(t, pub, signer.Public())
	suite, err := sigalg.SuiteOf(pub)
	if err != nil {
		t.Fatalf("PublicKey(%s): %v", name, err)
	}
	msg := []byte("keystest message for " + name)
	sig, err := sigalg.Sign(signer, msg)
	if err != nil {
		t.Fatalf("sigalg.Sign(%s): %v", name, err)
	}
	if err := suite.Verify(pub, msg, sig); err != nil {
		t.Fatalf("signature by %s does not verify: %v", name, err)
	}
	if err := suite.Verify(pub, append(msg, '!'), sig); !errors.Is(err, sigalg.ErrInvalidSignature) {
		t.Fatalf("signature by %s verifies for another message: %v", name, err)
	}
}

func testEverySuite(t *testing.T, suites []sigalg.Suite, m keys.Manager) {
	defer m.Close()
	ctx := context.Background()
	for _, suite := range suites {
		t.Run(string(suite.ID()), func(t *testing.T) {
			name := keyName(suite.ID())
			created := mustCreate(t, m, name, suite.ID())
			pub, err := m.PublicKey(ctx, name)
			if err != nil {
				t.Fatalf("PublicKey: %v", err)
			}
			assertSameKey(t, created, pub)
			signAndVerify(t, m, name, created)
			// A second signer for the same name is the same key.
			signAndVerify(t, m, name, created)

			_, err = m.CreateKey(ctx, keys.CreateKeyRequest{Name: name, Suite: suite.ID()})
			if !errors.Is(err, keys.ErrExists) {
				t.Fatalf("CreateKey of an existing name: %v, want ErrExists", err)
			}
			pub, err = m.PublicKey(ctx, name)
			if err != nil {
				t.Fatalf("PublicKey after refused duplicate: %v", err)
			}
			assertSameKey(t, created, pub)
		})
	}
	// Keys of different names are different keys.
	last := suites[len(suites)-1].ID()
	a, _ := m.PublicKey(ctx, keyName(last))
	b := mustCreate(t, m, "another", last)
	if ka, _ := sigalg.MarshalPublicKey(a); bytes.Equal(ka, mustSPKI(t, b)) {
		t.Fatal("two CreateKey calls returned the same key")
	}
}

func mustSPKI(t *testing.T, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := sigalg.MarshalPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// testUnsupported checks that a suite the backend lacks is refused with
// ErrUnsupported, names the suite, and leaves no key behind.
func testUnsupported(t *testing.T, unsupported []sigalg.Suite, m keys.Manager) {
	defer m.Close()
	ctx := context.Background()
	for _, suite := range unsupported {
		t.Run(string(suite.ID()), func(t *testing.T) {
			name := keyName(suite.ID())
			_, err := m.CreateKey(ctx, keys.CreateKeyRequest{Name: name, Suite: suite.ID()})
			if !errors.Is(err, keys.ErrUnsupported) || !strings.Contains(err.Error(), string(suite.ID())) {
				t.Fatalf("CreateKey of an unsupported suite: %v, want ErrUnsupported naming %s", err, suite.ID())
			}
			if _, err := m.PublicKey(ctx, name); !errors.Is(err, keys.ErrNotFound) {
				t.Fatalf("a refused CreateKey left a key behind: %v", err)
			}
		})
	}
}

func testNames(t *testing.T, suite sigalg.ID, m keys.Manager) {
	defer m.Close()
	ctx := context.Background()
	bad := []string{
		"", "Station", "../station", "a/b", `a\b`, ".hidden", "-dash", "_under", "a b", "a\x00b",
		"é", "station\n", strings.Repeat("a", keys.MaxNameLen+1), "..", ".", "a:b",
	}
	for _, name := range bad {
		t.Run(fmt.Sprintf("bad %q", name), func(t *testing.T) {
			_, err := m.CreateKey(ctx, keys.CreateKeyRequest{Name: name, Suite: suite})
			if !errors.Is(err, keys.ErrInvalidName) {
				t.Fatalf("CreateKey: %v, want ErrInvalidName", err)
			}
			if _, err := m.PublicKey(ctx, name); !errors.Is(err, keys.ErrInvalidName) {
				t.Fatalf("PublicKey: %v, want ErrInvalidName", err)
			}
			if _, err := m.Signer(ctx, name); !errors.Is(err, keys.ErrInvalidName) {
				t.Fatalf("Signer: %v, want ErrInvalidName", err)
			}
		})
	}
	good := []string{"a", "0", "station", "station-2026.11_a", strings.Repeat("z", keys.MaxNameLen), "a..b"}
	for _, name := range good {
		t.Run(fmt.Sprintf("good %q", name), func(t *testing.T) {
			pub := mustCreate(t, m, name, suite)
			signAndVerify(t, m, name, pub)
		})
	}
}

func testErrors(t *testing.T, suite sigalg.ID, m keys.Manager) {
	defer m.Close()
	ctx := context.Background()
	if _, err := m.PublicKey(ctx, "missing"); !errors.Is(err, keys.ErrNotFound) {
		t.Errorf("PublicKey of a missing key: %v, want ErrNotFound", err)
	}
	if _, err := m.Signer(ctx, "missing"); !errors.Is(err, keys.ErrNotFound) {
		t.Errorf("Signer of a missing key: %v, want ErrNotFound", err)
	}
	_, err := m.CreateKey(ctx, keys.CreateKeyRequest{Name: "rsa", Suite: "rsa-2048"})
	if !errors.Is(err, sigalg.ErrUnknownAlgorithm) {
		t.Errorf("CreateKey of an unknown suite: %v, want sigalg.ErrUnknownAlgorithm", err)
	}
	if _, err := m.PublicKey(ctx, "rsa"); !errors.Is(err, keys.ErrNotFound) {
		t.Errorf("a refused CreateKey left a key behind: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := m.CreateKey(cancelled, keys.CreateKeyRequest{Name: "late", Suite: suite}); !errors.Is(err, context.Canceled) {
		t.Errorf("CreateKey with a cancelled context: %v", err)
	}
	if _, err := m.PublicKey(ctx, "late"); !errors.Is(err, keys.ErrNotFound) {
		t.Errorf("a cancelled CreateKey left a key behind: %v", err)
	}
}

func testConcurrent(t *testing.T, suiteID sigalg.ID, m keys.Manager) {
	defer m.Close()
	ctx := context.Background()
	pub := mustCreate(t, m, "shared", suiteID)
	suite, err := sigalg.SuiteOf(pub)
	if err != nil {
		t.Fatalf("CreateKey(shared): %v", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		wg.Go(func() {
			signer, err := m.Signer(ctx, "shared")
			if err != nil {
				errs <- err
				return
			}
			msg := fmt.Appendf(nil, "message %d", i)
			sig, err := sigalg.Sign(signer, msg)
			if err == nil {
				err = suite.Verify(pub, msg, sig)
			}
			if err != nil {
				errs <- err
			}
		})
		wg.Go(func() {
			// Racing creators of one name: exactly the first may win.
			_, err := m.CreateKey(ctx, keys.CreateKeyRequest{Name: "raced", Suite: suiteID})
			if err != nil && !errors.Is(err, keys.ErrExists) {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if _, err := m.PublicKey(ctx, "raced"); err != nil {
		t.Errorf("after racing creators: %v", err)
	}
}

func testClosed(t *testing.T, suite sigalg.ID, m keys.Manager) {
	ctx := context.Background()
	mustCreate(t, m, "k", suite)
	signer, err := m.Signer(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := sigalg.Sign(signer, []byte("after close")); !errors.Is(err, keys.ErrClosed) {
		t.Errorf("signing after Close: %v, want ErrClosed", err)
	}
	if _, err := m.PublicKey(ctx, "k"); !errors.Is(err, keys.ErrClosed) {
		t.Errorf("PublicKey after Close: %v, want ErrClosed", err)
	}
	if _, err := m.CreateKey(ctx, keys.CreateKeyRequest{Name: "j", Suite: suite}); !errors.Is(err, keys.ErrClosed) {
		t.Errorf("CreateKey after Close: %v, want ErrClosed", err)
	}
}
