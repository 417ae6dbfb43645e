package sigalgtest

import (
	"crypto"
	"crypto/rand"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Forgeable returns, by name, a key of every suite family that anyone can
// sign for, each with its working signer: ML-DSA-44/65/87 with t1 = 0 (a
// random ρ) and the P-256 and Ed25519 keys ±1·G, ±1·B and 2^16·G, 2^16·B.
func Forgeable() (map[string]crypto.Signer, error) {
	out := map[string]crypto.Signer{}
	for _, id := range []sigalg.ID{sigalg.MLDSA44, sigalg.MLDSA65, sigalg.MLDSA87} {
		var rho [32]byte
		if _, err := rand.Read(rho[:]); err != nil {
			return nil, err
		}
		key, err := ZeroMLDSA(id, rho)
		if err != nil {
			return nil, err
		}
		out[string(id)+" t1 = 0"] = key
	}
	for _, k := range []int64{1, -1, 1 << 16} {
		p256, err := P256Scalar(k)
		if err != nil {
			return nil, err
		}
		out[fmt.Sprintf("ecdsa-p256 %d·G", k)] = p256
		ed, err := NewEd25519Scalar(k)
		if err != nil {
			return nil, err
		}
		out[fmt.Sprintf("ed25519 %d·B", k)] = ed
	}
	return out, nil
}
