//go:build cgo

package pkcs11kms

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"

	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/miekg/pkcs11"
)

// A PKCS #11 module is initialised once per process (C_Initialize), and
// every Manager of a process that names the same library shares it: a
// second C_Initialize fails, and a C_Finalize by one Manager would pull the
// module from under the others. module reference-counts its users and
// finalises only when the last one that this package initialised for goes.

type fileID struct{ dev, ino uint64 }

var (
	modulesMu sync.Mutex
	modules   = map[fileID]*module{}
)

type module struct {
	id   fileID
	path string
	ctx  *pkcs11.Ctx
	refs int
	// ownInit is false if someone else in the process had initialised the
	// library already; then it is theirs to finalise.
	ownInit bool
	// pinKey keys the MACs of PINs remembered per slot (slotState.pinMAC).
	pinKey []byte

	mu    sync.Mutex // guards slots
	slots map[uint]*slotState
}

// slotState is what the Managers of one process share about one token:
// PKCS #11 login state belongs to the application, not to a session.
type slotState struct {
	refs int
	// loggedIn says a Manager of this process logged the user in; pinMAC
	// is an HMAC of the PIN that did it, so that a later Manager with a
	// wrong PIN is refused even though C_Login would answer "already
	// logged in" without looking at its PIN.
	loggedIn bool
	pinMAC   []byte
	// createMu serialises CreateKey on this token within the process, so
	// that of two racing creators of one name exactly one makes the key.
	createMu sync.Mutex
}

// acquireModule loads and initialises the library at path, or takes
// another reference to it if this process has it already.
func acquireModule(path string) (*module, error) {
	info, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("PKCS #11 module %s: no such file; install the token vendor's module "+
				"(for SoftHSM2, the Debian package softhsm2: %s)", path, strings.Join(SoftHSM2Paths[:2], " or "))
		}
		return nil, fmt.Errorf("PKCS #11 module %s: %w", path, err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("PKCS #11 module %s: not a regular file", path)
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, fmt.Errorf("PKCS #11 module %s: cannot identify the file", path)
	}
	// Two names of one file (a symlink, a bind mount) are one library to
	// the dynamic loader, so they must be one module here.
	id := fileID{uint64(st.Dev), uint64(st.Ino)}

	modulesMu.Lock()
	defer modulesMu.Unlock()
	if m := modules[id]; m != nil {
		m.refs++
		return m, nil
	}
	ctx := pkcs11.New(path)
	if ctx == nil {
		return nil, fmt.Errorf("PKCS #11 module %s: the dynamic loader cannot load it (not a shared library for this platform, or a dependency is missing)", path)
	}
	m := &module{id: id, path: path, ctx: ctx, refs: 1, ownInit: true, slots: map[uint]*slotState{}}
	if err := ctx.Initialize(); err != nil {
		if !isRV(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
			ctx.Destroy()
			return nil, fmt.Errorf("PKCS #11 module %s: C_Initialize: %w", path, err)
		}
		m.ownInit = false
	}
	m.pinKey = make([]byte, 32)
	rand.Read(m.pinKey)
	modules[id] = m
	return m, nil
}

// release drops a reference; the last one finalises the library if this
// package initialised it.
func (m *module) release() error {
	modulesMu.Lock()
	defer modulesMu.Unlock()
	m.refs--
	if m.refs > 0 {
		return nil
	}
	delete(modules, m.id)
	var err error
	if m.ownInit {
		if e := m.ctx.Finalize(); e != nil {
			err = fmt.Errorf("PKCS #11 module %s: C_Finalize: %w", m.path, e)
		}
	}
	m.ctx.Destroy()
	return err
}

func (m *module) slot(id uint) *slotState {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.slots[id]
	if s == nil {
		s = &slotState{}
		m.slots[id] = s
	}
	return s
}

func (m *module) pinMAC(pin []byte) []byte {
	h := hmac.New(sha256.New, m.pinKey)
	h.Write(pin)
	return h.Sum(nil)
}

func isRV(err error, rv uint) bool {
	var e pkcs11.Error
	return errors.As(err, &e) && uint(e) == rv
}

var initTokenMu sync.Mutex

// InitToken initialises the first token of the module at modulePath that
// is not initialised yet (SoftHSM2 always offers one such slot), with the
// given label, security-officer PIN and user PIN: what `softhsm2-util
// --init-token --free` does, but through this process's instance of the
// module, which sees tokens made by another process only after it is
// re-initialised. Tests and the demo use it; a real HSM is initialised
// with its vendor's tools.
func InitToken(ctx context.Context, modulePath, label string, soPIN, userPIN []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if label == "" || len(label) > 32 {
		return fmt.Errorf("init token: label %q: want 1 to 32 bytes", label)
	}
	// Two initialisations at once would pick the same free slot.
	initTokenMu.Lock()
	defer initTokenMu.Unlock()
	m, err := acquireModule(modulePath)
	if err != nil {
		return fmt.Errorf("init token %q: %w", label, err)
	}
	defer m.release()
	slots, err := m.ctx.GetSlotList(true)
	if err != nil {
		return fmt.Errorf("init token %q: C_GetSlotList: %w", label, err)
	}
	free := -1
	for i, id := range slots {
		ti, err := m.ctx.GetTokenInfo(id)
		if err != nil {
			continue
		}
		if ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED != 0 {
			if ti.Label == label {
				return fmt.Errorf("init token %q: %w: a token of that label exists", label, keys.ErrExists)
			}
		} else if free < 0 {
			free = i
		}
	}
	if free >= 0 {
		id := slots[free]
		if err := m.ctx.InitToken(id, string(soPIN), label); err != nil {
			return fmt.Errorf("init token %q in slot %d: C_InitToken: %w", label, id, err)
		}
		sh, err := m.ctx.OpenSession(id, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if err != nil {
			return fmt.Errorf("init token %q: C_OpenSession: %w", label, err)
		}
		defer m.ctx.CloseSession(sh)
		if err := m.ctx.Login(sh, pkcs11.CKU_SO, string(soPIN)); err != nil {
			return fmt.Errorf("init token %q: security officer login: %w", label, err)
		}
		defer m.ctx.Logout(sh)
		if err := m.ctx.InitPIN(sh, string(userPIN)); err != nil {
			return fmt.Errorf("init token %q: C_InitPIN: %w", label, err)
		}
		return nil
	}
	return fmt.Errorf("init token %q: module %s offers no uninitialised token", label, modulePath)
}
