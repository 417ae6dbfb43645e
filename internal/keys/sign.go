package keys

import (
	"crypto"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// SignMessage signs the whole message msg with any signer a Manager hands
// out, through the suite of its public key, so that the signature verifies
// with that suite's Verify. sigalg's suites accept opaque signers (an
// HSM's, or the software store's): ECDSA P-256 gets the SHA-256 digest,
// Ed25519 and ML-DSA the message itself with crypto.Hash(0).
func SignMessage(signer crypto.Signer, msg []byte) ([]byte, error) {
	suite, err := sigalg.SuiteOf(signer.Public())
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return suite.Sign(signer, msg)
}
