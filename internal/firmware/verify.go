package firmware

import (
	"crypto/sha256"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sealing"
)

// Policy is what a device's boot ROM knows: the values burned into its OTP
// and the device-class key it holds.
type Policy struct {
	// RootKeyHashes are the SHA-256 digests of the DER SubjectPublicKeyInfo
	// of the vendor's root keys. Every one must have signed the image:
	// with an ECDSA and an ML-DSA root, an image needs both signatures.
	RootKeyHashes [][sha256.Size]byte
	// MinSecurityCounter is the anti-rollback counter: images with a lower
	// security counter are refused.
	MinSecurityCounter uint32
	// ClassKey is the device-class key encrypted images are sealed to; nil
	// if the device has none.
	ClassKey *sealing.PrivateKey
}

// Verified is an image a device may run.
type Verified struct {
	Header Header
	// Payload is the firmware in the clear.
	Payload []byte
	// Roots are the root keys whose signatures were verified, in policy
	// order.
	Roots []identity.ID
}

// VerifyBytes parses data and verifies it as Verify does.
func VerifyBytes(data []byte, policy Policy) (*Verified, error) {
	img, err := Parse(data)
	if err != nil {
		return nil, err
	}
	return Verify(img, policy)
}

// Verify makes the boot ROM's decision about an image, in the ROM's order:
// the image is well formed (ErrMalformed), signed (ErrUnsigned) by every
// root key of the policy (ErrUntrustedKey) with signatures that verify
// (ErrBadSignature), not older than the device allows (ErrRollback), and
// only then, if encrypted, decrypted with the class key
// (ErrEncryptedNoKey, ErrDecrypt), so a forged image never reaches the
// decryption key. A misconfigured policy without root keys is
// ErrNoRootKey.
func Verify(img *Image, policy Policy) (*Verified, error) {
	if img == nil || !payloadMatches(&img.header, img.payload) {
		return nil, fmt.Errorf("%w: payload does not match the SHA-256 in the header", ErrMalformed)
	}
	if len(policy.RootKeyHashes) == 0 {
		return nil, ErrNoRootKey
	}
	if len(img.sigs) == 0 {
		return nil, ErrUnsigned
	}
	roots, err := img.checkSignatures(policy.RootKeyHashes)
	if err != nil {
		return nil, err
	}
	if c := img.header.SecurityCounter; c < policy.MinSecurityCounter {
		return nil, fmt.Errorf("security counter %d is below the device's %d (%w)", c, policy.MinSecurityCounter, ErrRollback)
	}
	payload, err := img.Decrypt(policy.ClassKey)
	if err != nil {
		return nil, err
	}
	return &Verified{Header: img.header.clone(), Payload: payload, Roots: roots}, nil
}

// checkSignatures first finds a signature by every root, which is cheap,
// then verifies those signatures. Signatures by other keys are ignored: a
// device trusts only its roots.
func (img *Image) checkSignatures(rootHashes [][sha256.Size]byte) ([]identity.ID, error) {
	matched := make([]*signature, len(rootHashes))
	roots := make([]identity.ID, len(rootHashes))
	for i, h := range rootHashes {
		roots[i] = identity.ID(h)
		for j := range img.sigs {
			if img.sigs[j].Signer().Equal(roots[i]) {
				matched[i] = &img.sigs[j]
			}
		}
		if matched[i] == nil {
			return nil, fmt.Errorf("no signature by root key %s; the image is signed by %s (%w)", roots[i], img.signerList(), ErrUntrustedKey)
		}
	}
	msg := img.signedMessage()
	for i, s := range matched {
		suite, err := s.Suite.Suite()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		if err := suite.Verify(s.pub, msg, s.Value); err != nil {
			return nil, fmt.Errorf("%s signature by root key %s does not verify (%w)", s.Suite, roots[i], ErrBadSignature)
		}
	}
	return roots, nil
}

func (img *Image) signerList() string {
	out := ""
	for i, s := range img.sigs {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%s %s", s.Suite, s.Signer())
	}
	return out
}
