package keys

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Options configure the opening of a Manager. Backends use what applies to
// them and ignore the rest.
type Options struct {
	// Passphrase unlocks a software store, or is the PIN of a token. Open
	// does not keep it; the caller may zero it once Open returns.
	Passphrase []byte
	// Create lets a backend that can make a new, empty store do so when
	// the URI names none. Without it, a store that does not exist is
	// ErrNotFound, so a mistyped path fails instead of yielding an empty
	// store.
	Create bool
}

// Opener opens a Manager from the part of a URI after "scheme:". Its errors
// name the store it tried to open.
type Opener func(ctx context.Context, location string, opts Options) (Manager, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Opener{}
	checkers   = map[string]func(location string) error{}
)

// RegisterLocationCheck gives CheckURI a backend's own syntax check of a
// location, so that configuration refuses a malformed one before it
// creates anything. The check must not open or touch the store; its error
// names what is wrong without repeating secrets the location may hold.
// Like Register, it is called from init and panics on a second call.
func RegisterLocationCheck(scheme string, check func(location string) error) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := checkers[scheme]; dup {
		panic("keys: location check registered twice for scheme " + scheme)
	}
	checkers[scheme] = check
}

// Register makes a backend available to Open under scheme. Backends call it
// from init, so a program chooses its backends by importing them; it panics
// on a second registration of one scheme, which is a programming error.
func Register(scheme string, open Opener) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[scheme]; dup {
		panic("keys: backend registered twice for scheme " + scheme)
	}
	registry[scheme] = open
}

// Schemes returns the registered URI schemes, sorted.
func Schemes() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	var out []string
	for s := range registry {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// plannedSchemes are backends that are designed for but not built, or
// built but not linked into this program, so that a URI naming one gets a
// reason instead of "unknown scheme". A registered backend takes
// precedence over its entry here.
var plannedSchemes = map[string]string{
	"pkcs11": "the PKCS #11 backend (package internal/keys/pkcs11kms) is not linked into this program",
	"tpm":    "the TPM backend (package internal/keys/tpmkms) is not linked into this program",
}

// Open opens the key manager a URI names: "soft:/path/to/dir" for the
// software store (package softkms, which must be linked in by importing
// it). The scheme ends at the first colon.
func Open(ctx context.Context, uri string, opts Options) (Manager, error) {
	open, location, err := resolve(uri)
	if err != nil {
		return nil, err
	}
	// Backends name the store they failed to open; wrapping again would
	// say "open" twice.
	m, err := open(ctx, location, opts)
	if err != nil {
		// A backend's typed nil (a nil *Store in a non-nil Manager) would
		// look like a manager to the caller's cleanup.
		return nil, err
	}
	return m, nil
}

// CheckURI returns the error Open would return for a malformed URI, an
// empty location, or a scheme no linked backend serves (ErrUnsupported,
// with the reason for a planned one), without opening or creating
// anything: configuration checks its key URIs with it before it touches
// the disk.
func CheckURI(uri string) error {
	_, _, err := resolve(uri)
	return err
}

func resolve(uri string) (Opener, string, error) {
	scheme, location, ok := strings.Cut(uri, ":")
	if !ok || scheme == "" {
		return nil, "", fmt.Errorf("open key manager %q: want SCHEME:LOCATION, e.g. soft:/var/lib/hallmark/keys", uri)
	}
	registryMu.RLock()
	open, found := registry[scheme]
	check := checkers[scheme]
	registryMu.RUnlock()
	if !found {
		if why, planned := plannedSchemes[scheme]; planned {
			return nil, "", fmt.Errorf("open key manager %q: %w: %s", uri, ErrUnsupported, why)
		}
		return nil, "", fmt.Errorf("open key manager %q: %w: scheme %q (available: %s)",
			uri, ErrUnsupported, scheme, strings.Join(Schemes(), ", "))
	}
	if location == "" {
		return nil, "", fmt.Errorf("open key manager %q: no location after %q", uri, scheme+":")
	}
	if check != nil {
		if err := check(location); err != nil {
			// The backend's error names the store; the URI may carry a
			// PIN source path but never a PIN (backends refuse those).
			return nil, "", fmt.Errorf("key manager URI %s:…: %w", scheme, err)
		}
	}
	return open, location, nil
}
