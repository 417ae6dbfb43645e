package sealing

// The ECDH programming channel: a second way to wrap a device key to a
// chip, for key stores that are PKCS #11 tokens.
//
// Why this format. The default channel seals with HPKE to an X-Wing
// (ML-KEM-768 + X25519) transport key, which a token cannot compute: PKCS
// #11 2.40, and SoftHSM2 2.6 with it, has no HPKE, no HKDF, no ML-KEM and
// no X25519 key derivation. With HPKE the device key would have to leave
// the HSM in the clear and be sealed on the host. What SoftHSM2 2.6 (and
// every HSM we know of) does offer is exactly the three steps below:
//
//	Z = CKM_ECDH1_DERIVE (CKD_NULL, no KDF): the x-coordinate of the
//	    shared P-256 point, as a 32-byte AES key;
//	K = CKM_AES_ECB_ENCRYPT_DATA under Z of D = SHA-256(ECDHWrapInfo ‖ T ‖
//	    E): AES-256-ECB of two blocks; since AES is a pseudo-random
//	    permutation this is a KDF keyed by Z, and D binds K to this chip's
//	    key T and this ephemeral key E (the host computes the hash; it is
//	    public);
//	W = CKM_AES_KEY_WRAP_PAD (RFC 5649) of the device key's PKCS #8 under
//	    K, done by C_WrapKey, so the device key leaves the token only as W.
//
// The blob is ECDHWrapVersion ‖ E (65-byte uncompressed point) ‖ W. A
// fresh E per blob means Z and K are used once. KWP authenticates W, and
// through K the chip key and E, so a changed byte anywhere is refused.
//
// This channel is classical only. Its confidentiality rests on P-256
// ECDH: whoever records the programming line today and has a
// cryptographically relevant quantum computer later recovers Z, hence the
// device key. That is the price of keeping the key inside an HSM that has
// no post-quantum KEM; the HPKE X-Wing channel stays the default for
// software key stores, whose device keys are in host memory anyway.

import (
	"bytes"
	"crypto/aes"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"errors"
	"fmt"
)

// ECDHWrapVersion is the first byte of an ECDH-wrapped blob.
const ECDHWrapVersion = 0x01

// ECDHWrapInfo starts the hash that K is derived from, separating this
// use of the ECDH secret from any other.
const ECDHWrapInfo = "hallmark ecdh key wrap v1"

// p256PointSize is an uncompressed P-256 point: 0x04 ‖ x ‖ y.
const p256PointSize = 65

// ECDHWrapOverhead is how many bytes wrapping adds to the plaintext
// beside KWP's padding: the version, E and KWP's integrity semiblock.
const ECDHWrapOverhead = 1 + p256PointSize + semiblock

// ErrUnwrapECDH reports an ECDH-wrapped blob that cannot be unwrapped.
// When the blob's public structure is wrong (version, length, E not a
// point on the curve) the error says so; when a cryptographic check fails
// (another chip's blob, a changed byte) it says nothing more, so that a
// failure teaches an attacker nothing.
var ErrUnwrapECDH = errors.New("cannot unwrap ECDH-wrapped key (wrong chip, or tampered or malformed)")

// IsECDHWrapped reports whether blob has the shape of WrapECDH's output:
// its version byte then an uncompressed point. HPKE-sealed data (Seal)
// starts with a KEM identifier, none of which starts with 0x01, so a
// receiver can tell the two formats apart without trying either.
func IsECDHWrapped(blob []byte) bool {
	return len(blob) > 1+p256PointSize && blob[0] == ECDHWrapVersion && blob[1] == 0x04
}

// WrapECDH wraps pkcs8 (or any key material of 1 to MaxKWPPlaintext bytes)
// to the chip's P-256 transport key, in software. A PKCS #11 key store
// computes the same bytes inside its token.
func WrapECDH(chip *ecdh.PublicKey, pkcs8 []byte) ([]byte, error) {
	if err := checkP256(chip); err != nil {
		return nil, fmt.Errorf("ecdh wrap: %w", err)
	}
	eph, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ecdh wrap: %w", err)
	}
	z, err := eph.ECDH(chip)
	if err != nil {
		return nil, fmt.Errorf("ecdh wrap: %w", err)
	}
	defer clear(z)
	ePub := eph.PublicKey().Bytes()
	kek, err := ECDHWrapKEK(z, ECDHWrapContext(chip.Bytes(), ePub))
	if err != nil {
		return nil, fmt.Errorf("ecdh wrap: %w", err)
	}
	defer clear(kek)
	w, err := KWPWrap(kek, pkcs8)
	if err != nil {
		return nil, fmt.Errorf("ecdh wrap: %w", err)
	}
	out := make([]byte, 0, 1+len(ePub)+len(w))
	out = append(out, ECDHWrapVersion)
	out = append(out, ePub...)
	return append(out, w...), nil
}

// UnwrapECDH reverses WrapECDH with the chip's transport private key and
// returns the wrapped key material.
func UnwrapECDH(chip *ecdh.PrivateKey, blob []byte) ([]byte, error) {
	if chip == nil || chip.Curve() != ecdh.P256() {
		return nil, errors.New("ecdh unwrap: the transport key is not a P-256 key")
	}
	switch {
	case len(blob) < 1+p256PointSize+2*semiblock:
		return nil, fmt.Errorf("%w: %d bytes, want at least %d", ErrUnwrapECDH, len(blob), 1+p256PointSize+2*semiblock)
	case blob[0] != ECDHWrapVersion:
		return nil, fmt.Errorf("%w: format version %d, want %d", ErrUnwrapECDH, blob[0], ECDHWrapVersion)
	case (len(blob)-1-p256PointSize)%semiblock != 0:
		return nil, fmt.Errorf("%w: the wrapped key is not a whole number of 8-byte semiblocks", ErrUnwrapECDH)
	}
	ePub := blob[1 : 1+p256PointSize]
	// NewPublicKey accepts only an uncompressed point on the curve (not
	// the point at infinity), so an invalid-curve point never reaches the
	// scalar multiplication.
	eph, err := ecdh.P256().NewPublicKey(ePub)
	if err != nil {
		return nil, fmt.Errorf("%w: the ephemeral key is not a P-256 point", ErrUnwrapECDH)
	}
	z, err := chip.ECDH(eph)
	if err != nil {
		return nil, ErrUnwrapECDH
	}
	defer clear(z)
	kek, err := ECDHWrapKEK(z, ECDHWrapContext(chip.PublicKey().Bytes(), ePub))
	if err != nil {
		return nil, ErrUnwrapECDH
	}
	defer clear(kek)
	plain, err := KWPUnwrap(kek, blob[1+p256PointSize:])
	if err != nil {
		return nil, ErrUnwrapECDH
	}
	return trimKeyPadding(plain), nil
}

// ECDHWrapContext is D = SHA-256(ECDHWrapInfo ‖ chip ‖ eph), the data a
// token encrypts under Z to derive K; chip and eph are uncompressed
// points. It is exported for the PKCS #11 backend, which computes D on the
// host and hands it to CKM_AES_ECB_ENCRYPT_DATA.
func ECDHWrapContext(chip, eph []byte) []byte {
	h := sha256.New()
	h.Write([]byte(ECDHWrapInfo))
	h.Write(chip)
	h.Write(eph)
	return h.Sum(nil)
}

// ECDHWrapKEK is K = AES-256-ECB(Z, D), what CKM_AES_ECB_ENCRYPT_DATA
// derives from the ECDH secret z (32 bytes) and the context d (32 bytes).
func ECDHWrapKEK(z, d []byte) ([]byte, error) {
	if len(z) != 32 || len(d) != 2*aes.BlockSize {
		return nil, fmt.Errorf("key derivation: secret of %d and context of %d bytes, want 32 and 32", len(z), len(d))
	}
	block, err := aes.NewCipher(z)
	if err != nil {
		return nil, err
	}
	k := make([]byte, len(d))
	for i := 0; i < len(d); i += aes.BlockSize {
		block.Encrypt(k[i:i+aes.BlockSize], d[i:i+aes.BlockSize])
	}
	return k, nil
}

func checkP256(pub *ecdh.PublicKey) error {
	if pub == nil {
		return errors.New("no transport key")
	}
	if pub.Curve() != ecdh.P256() {
		return errors.New("the transport key is not a P-256 key")
	}
	return nil
}

// ECDHTransportKey is a chip's P-256 key-transport key as the station
// hands it to a key store: it satisfies keys.ECDHTransport, so a PKCS #11
// store can wrap inside its token to ECDHTransportKey(), and a software
// store simply calls Wrap.
type ECDHTransportKey struct {
	pub *ecdh.PublicKey
}

// NewECDHTransportKey wraps the chip's public transport key; it must be a
// P-256 key.
func NewECDHTransportKey(pub *ecdh.PublicKey) (*ECDHTransportKey, error) {
	if err := checkP256(pub); err != nil {
		return nil, err
	}
	return &ECDHTransportKey{pub: pub}, nil
}

// Wrap computes WrapECDH in software.
func (k *ECDHTransportKey) Wrap(plaintext []byte) ([]byte, error) { return WrapECDH(k.pub, plaintext) }

// ECDHTransportKey returns the chip's P-256 public key.
func (k *ECDHTransportKey) ECDHTransportKey() *ecdh.PublicKey { return k.pub }

// trimKeyPadding drops the zero bytes that SoftHSM2 2.6 appends to a
// private key's PKCS #8 before C_WrapKey (up to 7, counted in KWP's length
// indicator, so the integrity check passes with them). A DER value
// delimits itself, so the zeros after it are dropped; anything else after
// it is left for the PKCS #8 parser to refuse.
func trimKeyPadding(p []byte) []byte {
	var v asn1.RawValue
	rest, err := asn1.Unmarshal(p, &v)
	if err != nil || len(rest) == 0 || len(rest) > 7 || bytes.Count(rest, []byte{0}) != len(rest) {
		return p
	}
	return p[:len(p)-len(rest)]
}
