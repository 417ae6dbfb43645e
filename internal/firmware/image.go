package firmware

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Image is a firmware image being built or read. Its fields are private so
// that header, payload and signatures stay consistent: the only changes
// are Encrypt (before signing) and Sign.
type Image struct {
	header  Header
	payload []byte // as stored: ciphertext when encrypted
	sigs    []signature
}

// Signature is one signature in an image.
type Signature struct {
	Suite sigalg.ID
	// PublicKey is the signer's DER SubjectPublicKeyInfo. The image carries
	// it because a device stores only its hash.
	PublicKey []byte
	Value     []byte
}

// Signer is the identity of the signing key: the SHA-256 of its DER
// SubjectPublicKeyInfo, as a device's OTP stores it.
func (s Signature) Signer() identity.ID { return identity.FromSPKI(s.PublicKey) }

// signature keeps the parsed key next to its encoding, so verifying does
// not parse it again.
type signature struct {
	Signature
	pub crypto.PublicKey
}

// New starts an unsigned image with a plain payload of 1 to MaxPayloadSize
// bytes.
func New(meta Metadata, payload []byte) (*Image, error) {
	if !meta.Type.known() {
		return nil, fmt.Errorf("new image: unknown image type %d", meta.Type)
	}
	if len(payload) == 0 || len(payload) > MaxPayloadSize {
		return nil, fmt.Errorf("new image: payload of %d bytes, want 1 to %d", len(payload), MaxPayloadSize)
	}
	if meta.RetireSlots >= 1<<MaxRootSlots {
		return nil, fmt.Errorf("new image: retirement of slots %s; a device has slots 0 to %d", meta.RetireSlots, MaxRootSlots-1)
	}
	h := Header{Metadata: meta, PayloadSize: uint32(len(payload)), PayloadDigest: sha256.Sum256(payload)}
	h.Format = h.format()
	return &Image{header: h, payload: bytes.Clone(payload)}, nil
}

// Header returns a copy of the image's header.
func (img *Image) Header() Header { return img.header.clone() }

// Payload returns a copy of the payload as stored: the ciphertext when the
// image is encrypted.
func (img *Image) Payload() []byte { return bytes.Clone(img.payload) }

// Encrypted reports whether the payload is encrypted.
func (img *Image) Encrypted() bool { return img.header.Encryption != nil }

// Signatures returns copies of the image's signatures in order.
func (img *Image) Signatures() []Signature {
	out := make([]Signature, len(img.sigs))
	for i, s := range img.sigs {
		out[i] = Signature{Suite: s.Suite, PublicKey: bytes.Clone(s.PublicKey), Value: bytes.Clone(s.Value)}
	}
	return out
}

// Encrypt seals the payload to a device-class public key, binding the
// header to the ciphertext. It refuses a signed image, whose signatures
// cover the header Encrypt changes, and an image encrypted already.
func (img *Image) Encrypt(classKey *sealing.PublicKey) error {
	switch {
	case classKey == nil:
		return errors.New("encrypt image: no class key")
	case len(img.sigs) > 0:
		return fmt.Errorf("encrypt image: %w (encrypt first, then sign)", ErrAlreadySigned)
	case img.header.Encryption != nil:
		return fmt.Errorf("encrypt image: %w", ErrAlreadyEncrypted)
	}
	sealer, err := sealing.NewSealer(classKey, []byte(PayloadInfo))
	if err != nil {
		return fmt.Errorf("encrypt image: %w", err)
	}
	h := img.header.clone()
	h.Encryption = &Encryption{KEM: classKey.KEM(), Recipient: classKey.Fingerprint(), Encapsulation: sealer.Encapsulation()}
	h.PayloadSize = uint32(len(img.payload) + sealing.Overhead)
	ciphertext, err := sealer.Seal(h.aad(), img.payload)
	if err != nil {
		return fmt.Errorf("encrypt image: %w", err)
	}
	if len(ciphertext) != int(h.PayloadSize) {
		return fmt.Errorf("encrypt image: ciphertext of %d bytes, want %d", len(ciphertext), h.PayloadSize)
	}
	h.PayloadDigest = sha256.Sum256(ciphertext)
	img.header, img.payload = h, ciphertext
	return nil
}

// Decrypt returns the plaintext payload: the stored payload itself when
// the image is not encrypted. It does not check signatures; a device
// calls Verify, which decrypts only after the signatures hold.
func (img *Image) Decrypt(classKey *sealing.PrivateKey) ([]byte, error) {
	e := img.header.Encryption
	if e == nil {
		return bytes.Clone(img.payload), nil
	}
	if classKey == nil {
		return nil, ErrEncryptedNoKey
	}
	if have := classKey.Public().Fingerprint(); classKey.KEM() != e.KEM || have != e.Recipient {
		return nil, fmt.Errorf("%w: encrypted to %s class key %x, the device's is %s key %x",
			ErrDecrypt, e.KEM, e.Recipient[:8], classKey.KEM(), have[:8])
	}
	plain, err := sealing.OpenDetached(classKey, []byte(PayloadInfo), e.Encapsulation, img.header.aad(), img.payload)
	if err != nil {
		return nil, fmt.Errorf("%w: ciphertext does not authenticate under the class key", ErrDecrypt)
	}
	return plain, nil
}

// signedMessage is what every signature of the image signs: the context
// string, then the header, which binds the payload through its digest.
func (img *Image) signedMessage() []byte {
	return append([]byte(SignatureContext), img.header.marshal()...)
}

// Sign adds a signature by key, of any sigalg suite. An image may carry up
// to MaxSignatures signatures, one per key. Encrypt must come first.
func (img *Image) Sign(key crypto.Signer) error {
	if len(img.sigs) >= MaxSignatures {
		return fmt.Errorf("sign image: it already carries the maximum of %d signatures", MaxSignatures)
	}
	suite, err := sigalg.SuiteOf(key)
	if err != nil {
		return fmt.Errorf("sign image: %w", err)
	}
	spki, err := sigalg.MarshalPublicKey(key.Public())
	if err != nil {
		return fmt.Errorf("sign image: %w", err)
	}
	signer := identity.FromSPKI(spki)
	for _, s := range img.sigs {
		if s.Signer() == signer {
			return fmt.Errorf("sign image: it already carries a signature by %s", signer)
		}
	}
	msg := img.signedMessage()
	value, err := suite.Sign(key, msg)
	if err != nil {
		return fmt.Errorf("sign image: %w", err)
	}
	// A faulty signer (a broken token, a glitched computation) would
	// otherwise ship an image that no device boots.
	if err := suite.Verify(key.Public(), msg, value); err != nil {
		return fmt.Errorf("sign image: the %s signer produced a signature that does not verify: %w", suite.ID(), err)
	}
	img.sigs = append(img.sigs, signature{
		Signature: Signature{Suite: suite.ID(), PublicKey: spki, Value: value},
		pub:       key.Public(),
	})
	return nil
}
