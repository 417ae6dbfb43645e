//go:build !cgo

package pkcs11kms

import (
	"context"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/keys"
)

// errNoCgo says why this build cannot speak PKCS #11: the module is a C
// shared library, loaded with dlopen through cgo.
var errNoCgo = fmt.Errorf("%w: this hallmark was built with CGO_ENABLED=0; PKCS #11 needs a cgo build (go build with a C compiler)", keys.ErrUnsupported)

func init() {
	keys.Register("pkcs11", func(ctx context.Context, location string, opts keys.Options) (keys.Manager, error) {
		return nil, fmt.Errorf("open key manager pkcs11:%s: %w", redactedLocation(location), errNoCgo)
	})
	keys.RegisterLocationCheck("pkcs11", func(location string) error {
		_, err := ParseURI(location)
		return err
	})
}

// InitToken would initialise a token; without cgo there is no module to
// talk to.
func InitToken(ctx context.Context, modulePath, label string, soPIN, userPIN []byte) error {
	return fmt.Errorf("init token %q: %w", label, errNoCgo)
}
