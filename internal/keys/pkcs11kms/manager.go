//go:build cgo

package pkcs11kms

import (
	"bytes"
	"context"

	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/miekg/pkcs11"
)

func init() {
	// Options.Create does not apply: a token is initialised with its
	// vendor's tools (or InitToken), never by opening a URI.
	keys.Register("pkcs11", func(ctx context.Context, location string, opts keys.Options) (keys.Manager, error) {
		return Open(ctx, location, opts.Passphrase)
	})
	keys.RegisterLocationCheck("pkcs11", func(location string) error {
		_, err := ParseURI(location)
		return err
	})
}

// Mechanisms and key types PKCS #11 3.0 and 3.2 define that
// github.com/miekg/pkcs11 v1.1.2 (a 2.40 header) lacks.
const (
	ckkECEdwards            = 0x40   // CKK_EC_EDWARDS, 3.0
	ckmECEdwardsKeyPairGen  = 0x1055 // CKM_EC_EDWARDS_KEY_PAIR_GEN, 3.0
	ckmEdDSA                = 0x1057 // CKM_EDDSA, 3.0
	ckkMLDSA                = 0x4a   // CKK_ML_DSA, 3.2
	ckmMLDSAKeyPairGen      = 0x1c   // CKM_ML_DSA_KEY_PAIR_GEN, 3.2
	ckmMLDSA                = 0x1d   // CKM_ML_DSA, 3.2
	ckaParameterSet         = 0x61d  // CKA_PARAMETER_SET, 3.2
	ckpMLDSA44, ckpMLDSA65  = 1, 2   // CKP_ML_DSA_44, CKP_ML_DSA_65
	ckpMLDSA87              = 3      // CKP_ML_DSA_87
	ckUnavailableInfo       = ^uint(0)
	maxSessions             = 16
	maxPINFile              = 1024
	sessionFlags            = pkcs11.CKF_SERIAL_SESSION | pkcs11.CKF_RW_SESSION
	ckfUserPINFinalTry      = 0x20000 // CKF_USER_PIN_FINAL_TRY
	ckfTokenInitialized     = pkcs11.CKF_TOKEN_INITIALIZED
	ckrUserAlreadyLoggedIn  = pkcs11.CKR_USER_ALREADY_LOGGED_IN
	ckrUserNotLoggedIn      = pkcs11.CKR_USER_NOT_LOGGED_IN
	ckrPINIncorrect         = pkcs11.CKR_PIN_INCORRECT
	ckrPINLocked            = pkcs11.CKR_PIN_LOCKED
	ckrPINLenRange          = pkcs11.CKR_PIN_LEN_RANGE
	ckrSessionHandleInvalid = pkcs11.CKR_SESSION_HANDLE_INVALID
	ckrSessionClosed        = pkcs11.CKR_SESSION_CLOSED
	ckrDeviceRemoved        = pkcs11.CKR_DEVICE_REMOVED
	ckrTokenNotPresent      = pkcs11.CKR_TOKEN_NOT_PRESENT
)

// suiteMech is what the token must offer for a suite: a key-pair
// generation and a signature mechanism.
type suiteMech struct {
	gen, sign         uint
	genName, signName string
}

var suiteMechs = map[sigalg.ID]suiteMech{
	sigalg.ECDSAP256: {pkcs11.CKM_EC_KEY_PAIR_GEN, pkcs11.CKM_ECDSA, "CKM_EC_KEY_PAIR_GEN", "CKM_ECDSA"},
	sigalg.Ed25519:   {ckmECEdwardsKeyPairGen, ckmEdDSA, "CKM_EC_EDWARDS_KEY_PAIR_GEN", "CKM_EDDSA"},
	sigalg.MLDSA44:   {ckmMLDSAKeyPairGen, ckmMLDSA, "CKM_ML_DSA_KEY_PAIR_GEN", "CKM_ML_DSA"},
	sigalg.MLDSA65:   {ckmMLDSAKeyPairGen, ckmMLDSA, "CKM_ML_DSA_KEY_PAIR_GEN", "CKM_ML_DSA"},
	sigalg.MLDSA87:   {ckmMLDSAKeyPairGen, ckmMLDSA, "CKM_ML_DSA_KEY_PAIR_GEN", "CKM_ML_DSA"},
}

// Manager is an open token. It is safe for concurrent use: PKCS #11
// sessions are not, so every operation borrows one from a pool.
type Manager struct {
	mod    *module
	slotID uint
	slot   *slotState
	label  string
	mechs  map[uint]bool

	// mu guards closed; every operation holds it for reading while it uses
	// a session, so Close (which holds it for writing) finds all sessions
	// idle.
	mu     sync.RWMutex
	closed bool

	idle   chan pkcs11.SessionHandle
	sem    chan struct{} // one token per open session
	openMu sync.Mutex
	open   map[pkcs11.SessionHandle]bool

	cacheMu sync.Mutex
	cache   map[string]*tokenKey
}

var (
	_ keys.Manager            = (*Manager)(nil)
	_ keys.DeviceKeyGenerator = (*Manager)(nil)
)

// Open opens the token a manager URI names (with or without "pkcs11:")
// and logs in. The module is the URI's module-path, else $HALLMARK_PKCS11_MODULE.
// The user PIN is read from the URI's pin-source file, else
// $HALLMARK_PKCS11_PIN, else passphrase (what callers read from
// --passphrase-file). Open keeps no copy of the PIN beyond the HMAC that
// lets a second Manager of the process check its own.
func Open(ctx context.Context, location string, passphrase []byte) (*Manager, error) {
	u, err := ParseURI(location)
	if err != nil {
		return nil, fmt.Errorf("open key manager pkcs11:%s: %w", redactedLocation(location), err)
	}
	m, err := open(ctx, u, passphrase)
	if err != nil {
		return nil, fmt.Errorf("open key manager %s: %w", u.describe(), err)
	}
	return m, nil
}

func (u *URI) describe() string {
	s := "pkcs11 token"
	if u.Token != "" {
		s += fmt.Sprintf(" %q", u.Token)
	}
	if u.Serial != "" {
		s += " serial " + u.Serial
	}
	if u.SlotID != nil {
		s += fmt.Sprintf(" slot %d", *u.SlotID)
	}
	return s
}

func open(ctx context.Context, u *URI, passphrase []byte) (*Manager, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	path := u.ModulePath
	if path == "" {
		path = os.Getenv(EnvModule)
	}
	if path == "" {
		return nil, fmt.Errorf("no PKCS #11 module: add module-path=/path/to/module.so to the URI or set %s "+
			"(SoftHSM2's is usually one of %s)", EnvModule, strings.Join(SoftHSM2Paths, ", "))
	}
	pin, err := readPIN(u, passphrase)
	if err != nil {
		return nil, err
	}
	defer clear(pin)
	mod, err := acquireModule(path)
	if err != nil {
		return nil, err
	}
	m := &Manager{mod: mod, open: map[pkcs11.SessionHandle]bool{}, cache: map[string]*tokenKey{}}
	if err := m.init(u, pin); err != nil {
		m.closeSessions()
		mod.release()
		return nil, err
	}
	return m, nil
}

// readPIN takes the PIN from the first source that has one.
func readPIN(u *URI, passphrase []byte) ([]byte, error) {
	if u.PINSource != "" {
		return readPINFile(u.PINSource)
	}
	if env := os.Getenv(EnvPIN); env != "" {
		return []byte(env), nil
	}
	if len(passphrase) > 0 {
		return append([]byte(nil), passphrase...), nil
	}
	return nil, fmt.Errorf("%w: no PIN: add pin-source=file:/path/to/pin-file (mode 0600) to the URI, "+
		"set %s, or pass the PIN as the key store passphrase (--passphrase-file; for hallmark serve --ca-passphrase-file or HALLMARK_CA_PASSPHRASE)", keys.ErrPassphrase, EnvPIN)
}

func readPINFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("PIN file: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("PIN file: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("PIN file %s: not a regular file", path)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("PIN file %s: mode %#o lets other users read it; chmod 600 it", path, perm)
	}
	buf, err := io.ReadAll(io.LimitReader(f, maxPINFile+1))
	defer clear(buf)
	if err != nil {
		return nil, fmt.Errorf("PIN file: %w", err)
	}
	if len(buf) > maxPINFile {
		return nil, fmt.Errorf("PIN file %s: longer than %d bytes; it should hold the PIN alone", path, maxPINFile)
	}
	pin := bytes.Clone(bytes.TrimRight(buf, "\r\n"))
	if len(pin) == 0 {
		return nil, fmt.Errorf("%w: PIN file %s is empty", keys.ErrPassphrase, path)
	}
	return pin, nil
}

// init finds the token, opens the first session and logs in.
func (m *Manager) init(u *URI, pin []byte) error {
	slotID, ti, err := m.mod.findToken(u)
	if err != nil {
		return err
	}
	m.slotID, m.label = slotID, ti.Label
	n := maxSessions
	if max := ti.MaxRwSessionCount; max != 0 && max != ckUnavailableInfo && max < uint(n) {
		n = int(max)
	}
	m.idle = make(chan pkcs11.SessionHandle, n)
	m.sem = make(chan struct{}, n)
	mechs, err := m.mod.ctx.GetMechanismList(slotID)
	if err != nil {
		return fmt.Errorf("C_GetMechanismList: %w", err)
	}
	m.mechs = map[uint]bool{}
	for _, mech := range mechs {
		m.mechs[mech.Mechanism] = true
	}
	sh, err := m.session(context.Background())
	if err != nil {
		return err
	}
	defer m.done(sh, nil)
	m.slot = m.mod.slot(slotID)
	return m.login(sh, ti, pin)
}

// findToken returns the one initialised token the URI matches.
func (mod *module) findToken(u *URI) (uint, pkcs11.TokenInfo, error) {
	if u.LibraryManufacturer != "" || u.LibraryDescription != "" || u.LibraryVersion != "" {
		info, err := mod.ctx.GetInfo()
		if err != nil {
			return 0, pkcs11.TokenInfo{}, fmt.Errorf("C_GetInfo: %w", err)
		}
		v := fmt.Sprintf("%d.%d", info.LibraryVersion.Major, info.LibraryVersion.Minor)
		if u.LibraryManufacturer != "" && strings.TrimRight(info.ManufacturerID, " ") != u.LibraryManufacturer ||
			u.LibraryDescription != "" && strings.TrimRight(info.LibraryDescription, " ") != u.LibraryDescription ||
			u.LibraryVersion != "" && v != u.LibraryVersion && fmt.Sprint(info.LibraryVersion.Major) != u.LibraryVersion {
			return 0, pkcs11.TokenInfo{}, fmt.Errorf("%w: module %s is %q %q version %s, not the library the URI names",
				keys.ErrNotFound, mod.path, info.ManufacturerID, info.LibraryDescription, v)
		}
	}
	slots, err := mod.ctx.GetSlotList(true)
	if err != nil {
		return 0, pkcs11.TokenInfo{}, fmt.Errorf("C_GetSlotList: %w", err)
	}
	var (
		found  []uint
		infos  []pkcs11.TokenInfo
		labels []string
	)
	for _, id := range slots {
		ti, err := mod.ctx.GetTokenInfo(id)
		if err != nil || ti.Flags&ckfTokenInitialized == 0 {
			continue
		}
		labels = append(labels, fmt.Sprintf("%q (serial %s, slot %d)", ti.Label, ti.SerialNumber, id))
		if u.SlotID != nil && *u.SlotID != id ||
			u.Token != "" && ti.Label != u.Token ||
			u.Serial != "" && ti.SerialNumber != u.Serial ||
			u.Manufacturer != "" && ti.ManufacturerID != u.Manufacturer ||
			u.Model != "" && ti.Model != u.Model {
			continue
		}
		if u.SlotDescription != "" || u.SlotManufacturer != "" {
			si, err := mod.ctx.GetSlotInfo(id)
			if err != nil || u.SlotDescription != "" && strings.TrimRight(si.SlotDescription, " ") != u.SlotDescription ||
				u.SlotManufacturer != "" && strings.TrimRight(si.ManufacturerID, " ") != u.SlotManufacturer {
				continue
			}
		}
		found = append(found, id)
		infos = append(infos, ti)
	}
	switch {
	case len(found) == 1:
		return found[0], infos[0], nil
	case len(found) == 0 && len(labels) == 0:
		return 0, pkcs11.TokenInfo{}, fmt.Errorf("%w: module %s has no initialised token; initialise one "+
			"(SoftHSM2: softhsm2-util --init-token --free --label LABEL)", keys.ErrNotFound, mod.path)
	case len(found) == 0:
		return 0, pkcs11.TokenInfo{}, fmt.Errorf("%w: no token of module %s matches the URI; it has %s",
			keys.ErrNotFound, mod.path, strings.Join(labels, ", "))
	default:
		return 0, pkcs11.TokenInfo{}, fmt.Errorf("%d tokens of module %s match the URI; add serial= to choose one (%s)",
			len(found), mod.path, strings.Join(labels, ", "))
	}
}

// login logs the user in, once per process and token: PKCS #11 login
// state is shared by all of an application's sessions with a token.
func (m *Manager) login(sh pkcs11.SessionHandle, ti pkcs11.TokenInfo, pin []byte) error {
	mac := m.mod.pinMAC(pin)
	m.mod.mu.Lock()
	defer m.mod.mu.Unlock()
	s := m.slot
	if s.loggedIn {
		if s.pinMAC != nil && !equal(s.pinMAC, mac) {
			return fmt.Errorf("%w: the PIN differs from the one this process logged in to the token with", keys.ErrPassphrase)
		}
		s.refs++
		return nil
	}
	err := m.mod.ctx.Login(sh, pkcs11.CKU_USER, string(pin))
	switch {
	case err == nil:
		s.pinMAC = mac
	case isRV(err, ckrUserAlreadyLoggedIn):
		// Another part of the process logged in; its PIN is its business.
		s.pinMAC = nil
	case isRV(err, ckrPINIncorrect) || isRV(err, ckrPINLenRange):
		warn := ""
		if ti, e := m.mod.ctx.GetTokenInfo(m.slotID); e == nil && ti.Flags&ckfUserPINFinalTry != 0 {
			warn = "; one more wrong PIN locks the token"
		}
		return fmt.Errorf("%w: the token refused the PIN (%v)%s; check the pin-source file, %s or the key store passphrase (--passphrase-file, --ca-passphrase-file)",
			keys.ErrPassphrase, err, warn, EnvPIN)
	case isRV(err, ckrPINLocked):
		return fmt.Errorf("%w: the token's user PIN is locked after too many wrong PINs (%v); the security officer must reset it",
			keys.ErrPassphrase, err)
	default:
		return fmt.Errorf("C_Login: %w", err)
	}
	s.loggedIn = true
	s.refs++
	return nil
}

func equal(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	var d byte
	for i := range a {
		d |= a[i] ^ b[i]
	}
	return d == 0
}

// session borrows a session, opening one if fewer than the pool's size
// are open.
func (m *Manager) session(ctx context.Context) (pkcs11.SessionHandle, error) {
	select {
	case sh := <-m.idle:
		return sh, nil
	default:
	}
	select {
	case sh := <-m.idle:
		return sh, nil
	case m.sem <- struct{}{}:
		sh, err := m.mod.ctx.OpenSession(m.slotID, sessionFlags)
		if err != nil {
			<-m.sem
			return 0, fmt.Errorf("C_OpenSession: %w", err)
		}
		m.openMu.Lock()
		m.open[sh] = true
		m.openMu.Unlock()
		return sh, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// done returns a session to the pool, or drops it if err says it is dead.
func (m *Manager) done(sh pkcs11.SessionHandle, err error) {
	if isRV(err, ckrSessionHandleInvalid) || isRV(err, ckrSessionClosed) ||
		isRV(err, ckrDeviceRemoved) || isRV(err, ckrTokenNotPresent) {
		m.mod.ctx.CloseSession(sh)
		m.openMu.Lock()
		delete(m.open, sh)
		m.openMu.Unlock()
		<-m.sem
		return
	}
	m.idle <- sh
}

// Close logs out if no other Manager of the process uses the token,
// closes the Manager's sessions and releases the module (finalising it if
// this was its last user). Signers made by the Manager fail with
// keys.ErrClosed afterwards.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	var errs []error
	m.mod.mu.Lock()
	m.slot.refs--
	if m.slot.refs == 0 && m.slot.loggedIn {
		m.slot.loggedIn, m.slot.pinMAC = false, nil
		m.openMu.Lock()
		for sh := range m.open {
			if err := m.mod.ctx.Logout(sh); err != nil && !isRV(err, ckrUserNotLoggedIn) {
				errs = append(errs, fmt.Errorf("C_Logout: %w", err))
			}
			break
		}
		m.openMu.Unlock()
	}
	m.mod.mu.Unlock()
	errs = append(errs, m.closeSessions())
	m.cacheMu.Lock()
	clear(m.cache)
	m.cacheMu.Unlock()
	errs = append(errs, m.mod.release())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close pkcs11 token %q: %w", m.label, err)
	}
	return nil
}

func (m *Manager) closeSessions() error {
	m.openMu.Lock()
	defer m.openMu.Unlock()
	var errs []error
	for sh := range m.open {
		if err := m.mod.ctx.CloseSession(sh); err != nil {
			errs = append(errs, fmt.Errorf("C_CloseSession: %w", err))
		}
		delete(m.open, sh)
	}
	return errors.Join(errs...)
}

// use runs f with a session while the Manager is open.
func (m *Manager) use(ctx context.Context, f func(sh pkcs11.SessionHandle) error) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return keys.ErrClosed
	}
	sh, err := m.session(ctx)
	if err != nil {
		return err
	}
	err = f(sh)
	m.done(sh, err)
	return err
}

// Label returns the token's label.
func (m *Manager) Label() string { return m.label }

// keyID is the CKA_ID of a key: a hash of its name, so that tools which
// pair keys and certificates by CKA_ID (pkcs11-tool, p11-kit) pair them
// too, and so that it has a fixed size whatever the name.
func keyID(name string) []byte {
	h := sha256.Sum256([]byte("hallmark key id v1\x00" + name))
	return h[:16]
}

// mechanismUnsupported is the error for a suite whose mechanisms the token
// lacks.
func (m *Manager) suiteMechanisms(id sigalg.ID) (suiteMech, error) {
	sm, ok := suiteMechs[id]
	if !ok {
		return sm, fmt.Errorf("%w: suite %s", keys.ErrUnsupported, id)
	}
	for _, mech := range []struct {
		v    uint
		name string
	}{{sm.gen, sm.genName}, {sm.sign, sm.signName}} {
		if !m.mechs[mech.v] {
			hint := ""
			if strings.HasPrefix(string(id), "ml-dsa") {
				hint = " (a PKCS #11 3.2 mechanism; SoftHSM2 2.6 and most HSMs of 2025 lack it: keep ML-DSA keys in the soft: store)"
			}
			return sm, fmt.Errorf("%w: suite %s needs mechanism %s, which token %q does not offer%s",
				keys.ErrUnsupported, id, mech.name, m.label, hint)
		}
	}
	return sm, nil
}
