//go:build cgo

package pkcs11kms

import (
	"context"

	"github.com/miekg/pkcs11"
)

// Hooks for the external tests, which need softhsmtest (and so cannot be
// in this package) and the token's raw interface, as an attacker has it.

func PrivateHandle(m *Manager, name string) (pkcs11.ObjectHandle, error) {
	k, err := m.key(context.Background(), name)
	if err != nil {
		return 0, err
	}
	return k.priv, nil
}

func Use(m *Manager, f func(p *pkcs11.Ctx, sh pkcs11.SessionHandle) error) error {
	return m.use(context.Background(), func(sh pkcs11.SessionHandle) error { return f(m.mod.ctx, sh) })
}

var IsRV = isRV

func LoadedModules() int {
	modulesMu.Lock()
	defer modulesMu.Unlock()
	return len(modules)
}
