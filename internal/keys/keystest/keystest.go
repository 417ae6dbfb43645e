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
	"strings"
	"sync"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Run checks the Manager contract. newManager returns a Manager over a new,
// empty store; Run closes it. If the Manager is also a
// keys.DeviceKeyGenerator, that capability is checked too.
func Run(t *testing.T, newManager func(t *testing.T) keys.Manager) {
	t.Run("EverySuite", func(t *testing.T) { testEverySuite(t, newManager(t)) })
	t.Run("Names", func(t *testing.T) { testNames(t, newManager(t)) })
	t.Run("Errors", func(t *testing.T) { testErrors(t, newManager(t)) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, newManager(t)) })
	t.Run("Closed", func(t *testing.T) { testClosed(t, newManager(t)) })
	t.Run("DeviceKeys", func(t *testing.T) { testDeviceKeys(t, newManager(t)) })
}

// RunPersistence checks that keys outlive the Manager that made them.
// newStore makes a new, empty backing store and returns a function that
// opens a Manager on it; that function is called more than once.
func RunPersistence(t *testing.T, newStore func(t *testing.T) (open func() (keys.Manager, error))) {
	ctx := context.Background()
	open := newStore(t)
	m := mustOpen(t, open)
	pubs := map[string]crypto.PublicKey{}
	for _, suite := range sigalg.All() {
		name := keyName(suite.ID())
		pubs[name] = mustCreate(t, m, name, suite.ID())
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	m = mustOpen(t, open)
	defer m.Close()
	for _, suite := range sigalg.All() {
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

func testEverySuite(t *testing.T, m keys.Manager) {
	defer m.Close()
	ctx := context.Background()
	for _, suite := range sigalg.All() {
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
	a, _ := m.PublicKey(ctx, keyName(sigalg.MLDSA65))
	b := mustCreate(t, m, "another", sigalg.MLDSA65)
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

func testNames(t *testing.T, m keys.Manager) {
	defer m.Close()
	ctx := context.Background()
	bad := []string{
		"", "Station", "../station", "a/b", `a\b`, ".hidden", "-dash", "_under", "a b", "a\x00b",
		"é", "station\n", strings.Repeat("a", keys.MaxNameLen+1), "..", ".", "a:b",
	}
	for _, name := range bad {
		t.Run(fmt.Sprintf("bad %q", name), func(t *testing.T) {
			_, err := m.CreateKey(ctx, keys.CreateKeyRequest{Name: name, Suite: sigalg.Ed25519})
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
			pub := mustCreate(t, m, name, sigalg.Ed25519)
			signAndVerify(t, m, name, pub)
		})
	}
}

func testErrors(t *testing.T, m keys.Manager) {
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
	if _, err := m.CreateKey(cancelled, keys.CreateKeyRequest{Name: "late", Suite: sigalg.Ed25519}); !errors.Is(err, context.Canceled) {
		t.Errorf("CreateKey with a cancelled context: %v", err)
	}
	if _, err := m.PublicKey(ctx, "late"); !errors.Is(err, keys.ErrNotFound) {
		t.Errorf("a cancelled CreateKey left a key behind: %v", err)
	}
}

func testConcurrent(t *testing.T, m keys.Manager) {
	defer m.Close()
	ctx := context.Background()
	pub := mustCreate(t, m, "shared", sigalg.ECDSAP256)
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
			_, err := m.CreateKey(ctx, keys.CreateKeyRequest{Name: "raced", Suite: sigalg.Ed25519})
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

func testClosed(t *testing.T, m keys.Manager) {
	ctx := context.Background()
	mustCreate(t, m, "k", sigalg.Ed25519)
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
	if _, err := m.CreateKey(ctx, keys.CreateKeyRequest{Name: "j", Suite: sigalg.Ed25519}); !errors.Is(err, keys.ErrClosed) {
		t.Errorf("CreateKey after Close: %v, want ErrClosed", err)
	}
}
