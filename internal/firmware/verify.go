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
	// of the vendor's root keys, one per OTP slot in slot order. Every one
	// that is not retired must have signed the image: with an ECDSA and an
	// ML-DSA root, an image needs both signatures.
	RootKeyHashes [][sha256.Size]byte
	// Retired are the slots whose OTP revocation bit is burned: their
	// roots are neither required nor sufficient.
	Retired SlotMask
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
	// Roots are the live root keys whose signatures were verified, in
	// slot order.
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
// live root key of the policy (ErrUntrustedKey, or ErrRetiredRoot when
// only a retired root signed) with signatures that verify
// (ErrBadSignature), retiring only slots the device has and never the
// last live one (ErrRetireUnknownSlot, ErrRetireLastRoot), not older than
// the device allows (ErrRollback), and only then, if encrypted, decrypted
// with the class key (ErrEncryptedNoKey, ErrDecrypt), so a forged image
// never reaches the decryption key. A misconfigured policy without a live
// root key is ErrNoRootKey.
func Verify(img *Image, policy Policy) (*Verified, error) {
	roots, err := checkEnvelope(img, policy)
	if err != nil {
		return nil, err
	}
	payload, err := img.Decrypt(policy.ClassKey)
	if err != nil {
		return nil, err
	}
	return &Verified{Header: img.header.clone(), Payload: payload, Roots: roots}, nil
}

// VerifyEnvelope makes every check of Verify but the decryption, with the
// same errors, and returns the live roots that signed. It is for a
// verifier that holds no class key, such as the platform's firmware
// repository, which must refuse what a device would refuse without being
// able to open an encrypted payload; policy.ClassKey is ignored. Which
// class key an encrypted image is sealed to is the caller's to check
// (Header.Encryption.Recipient): only a device can prove it opens.
func VerifyEnvelope(img *Image, policy Policy) ([]identity.ID, error) {
	return checkEnvelope(img, policy)
}

func checkEnvelope(img *Image, policy Policy) ([]identity.ID, error) {
	if img == nil || !payloadMatches(&img.header, img.payload) {
		return nil, fmt.Errorf("%w: payload does not match the SHA-256 in the header", ErrMalformed)
	}
	live, retired := policy.split()
	if len(live) == 0 {
		return nil, ErrNoRootKey
	}
	if len(img.sigs) == 0 {
		return nil, ErrUnsigned
	}
	roots, err := img.checkSignatures(live, retired)
	if err != nil {
		return nil, err
	}
	if err := policy.checkRetirement(img.header.RetireSlots); err != nil {
		return nil, err
	}
	if c := img.header.SecurityCounter; c < policy.MinSecurityCounter {
		return nil, fmt.Errorf("security counter %d is below the device's %d (%w)", c, policy.MinSecurityCounter, ErrRollback)
	}
	return roots, nil
}

// split separates the live roots from the retired ones.
func (p *Policy) split() (live, retired [][sha256.Size]byte) {
	for i, h := range p.RootKeyHashes {
		if p.Retired.Has(i) {
			retired = append(retired, h)
		} else {
			live = append(live, h)
		}
	}
	return live, retired
}

// checkRetirement refuses a retirement the device could not carry out or
// should not: a slot it lacks, or every slot still live.
func (p *Policy) checkRetirement(retire SlotMask) error {
	if retire == 0 {
		return nil
	}
	for _, i := range retire.Slots() {
		if i >= len(p.RootKeyHashes) {
			return fmt.Errorf("retirement of slot %d on a device with %d root-key slots (%w)", i, len(p.RootKeyHashes), ErrRetireUnknownSlot)
		}
	}
	after := p.Retired | retire
	for i := range p.RootKeyHashes {
		if !after.Has(i) {
			return nil
		}
	}
	return fmt.Errorf("retirement of slots %s leaves no live root key (%w)", retire, ErrRetireLastRoot)
}

// checkSignatures first finds a signature by every live root, which is
// cheap, then verifies those signatures. Signatures by other keys are
// ignored: a device trusts only its roots. A missing live signature is
// ErrRetiredRoot rather than ErrUntrustedKey when a retired root signed,
// so that a device reports "the vendor's old key" and not "a stranger's".
func (img *Image) checkSignatures(rootHashes, retired [][sha256.Size]byte) ([]identity.ID, error) {
	matched := make([]*signature, len(rootHashes))
	roots := make([]identity.ID, len(rootHashes))
	for i, h := range rootHashes {
		roots[i] = identity.ID(h)
		for j := range img.sigs {
			if img.sigs[j].Signer().Equal(roots[i]) {
				matched[i] = &img.sigs[j]
			}
		}
		if matched[i] == nil && img.signedByAny(retired) {
			return nil, fmt.Errorf("no signature by live root key %s; the image is signed by %s, under a retired root (%w)", roots[i], img.signerList(), ErrRetiredRoot)
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

func (img *Image) signedByAny(hashes [][sha256.Size]byte) bool {
	for _, h := range hashes {
		for j := range img.sigs {
			if img.sigs[j].Signer().Equal(identity.ID(h)) {
				return true
			}
		}
	}
	return false
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
