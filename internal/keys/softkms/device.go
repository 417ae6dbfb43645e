package softkms

import (
	"context"
	"crypto"
	"crypto/rand"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// GenerateDeviceKey makes a device key pair for the inject root of trust.
// The private key is exported once, as wrap.Wrap(PKCS #8 DER), or as the
// PKCS #8 DER itself when wrap is nil, and is not stored; the plaintext DER
// is wiped once wrapped.
func (s *Store) GenerateDeviceKey(ctx context.Context, suiteID sigalg.ID, wrap keys.Wrapper) (crypto.PublicKey, []byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if _, err := s.sealer(); err != nil {
		return nil, nil, fmt.Errorf("generate device key: %w", err)
	}
	suite, err := suiteID.Suite()
	if err != nil {
		return nil, nil, fmt.Errorf("generate device key: %w", err)
	}
	key, err := suite.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate %s device key: %w", suite.ID(), err)
	}
	defer forget(key)
	pub, err := sigalg.ParsePublicKey(mustSPKI(key))
	if err != nil {
		return nil, nil, fmt.Errorf("generate %s device key: %w", suite.ID(), err)
	}
	der, err := sigalg.MarshalPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("generate %s device key: %w", suite.ID(), err)
	}
	if wrap == nil {
		return pub, der, nil
	}
	defer clear(der)
	wrapped, err := wrap.Wrap(der)
	if err != nil {
		return nil, nil, fmt.Errorf("generate %s device key: wrap: %w", suite.ID(), err)
	}
	return pub, wrapped, nil
}
