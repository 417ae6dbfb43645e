// Package firmware owns Hallmark's firmware image format and the check a
// device's boot ROM makes before it runs an image. An image is a header, a
// payload and a block of signatures. The signatures cover the header,
// which binds the payload by its SHA-256, so one image can carry a
// classical and a post-quantum signature at once and a device requires
// every root key it trusts to have signed (a hybrid AND policy). A
// vendor-signed image can ask a device to retire one of its root-key
// slots, after which that root is neither required nor enough.
//
// A payload may be encrypted to a device-class key (package sealing)
// before it is signed, so that a programming house handles only
// ciphertext and a device rejects a forged image before it uses its
// decryption key. docs/firmware.md gives the byte layout.
package firmware

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Format constants and limits. The limits are part of the format: a parser
// refuses anything beyond them before allocating.
const (
	// Magic starts every image.
	Magic = "HMFW"
	// FormatVersion is the original layout, which New still writes for an
	// image that retires no root-key slot, so that such images stay
	// byte-identical to those of earlier releases.
	FormatVersion = 1
	// FormatVersionRetire adds the root-key slot retirement field; New
	// writes it only for an image that retires a slot.
	FormatVersionRetire = 2
	// MaxRootSlots is the number of root-key slots a device's OTP has,
	// and so the width of the retirement field.
	MaxRootSlots = 4
	// MaxPayloadSize bounds the firmware itself (the plaintext); an
	// encrypted payload is sealing.Overhead bytes longer.
	MaxPayloadSize = 16 << 20
	// MaxHeaderSize bounds the header, encapsulated key included.
	MaxHeaderSize = 4 << 10
	// MaxSignatures bounds the signatures one image carries.
	MaxSignatures = 4
	// maxSignatureValue bounds one signature; ML-DSA-87's is 4627 bytes.
	maxSignatureValue = 8 << 10
	// MaxImageSize bounds a whole image.
	MaxImageSize = MaxHeaderSize + MaxPayloadSize + sealing.Overhead + 1 +
		MaxSignatures*(1+2+sigalg.MaxKeyDER+2+maxSignatureValue)
)

// Domain separation: what signers sign and what the payload is sealed
// under name this format and its version, so neither can be replayed as
// another protocol's message.
const (
	// SignatureContext precedes the header bytes in the signed message.
	SignatureContext = "hallmark firmware image v1\x00"
	// PayloadInfo is the HPKE info of the payload encryption.
	PayloadInfo = "hallmark firmware payload v1"
)

// Errors callers branch on. Verify reports each reason a device refuses an
// image with its own sentinel, so a device log or a factory tool can say
// exactly why.
var (
	// ErrMalformed reports bytes that are not a valid image: bad layout,
	// limits exceeded, unknown version or type, trailing data, or a
	// payload that does not match its hash.
	ErrMalformed = errors.New("malformed image")
	// ErrUnsigned reports an image without signatures.
	ErrUnsigned = errors.New("image is not signed")
	// ErrUntrustedKey reports an image lacking a signature by a root key
	// the device trusts: signed by other keys, or by only some of the
	// roots of a hybrid policy.
	ErrUntrustedKey = errors.New("trusted root signature missing")
	// ErrBadSignature reports a signature by a trusted root key that does
	// not verify: the header was changed after signing.
	ErrBadSignature = errors.New("invalid signature")
	// ErrRollback reports an image older than the device accepts.
	ErrRollback = errors.New("rollback refused")
	// ErrEncryptedNoKey reports an encrypted image on a device without a
	// device-class key.
	ErrEncryptedNoKey = errors.New("payload is encrypted and the device has no class key")
	// ErrDecrypt reports an encrypted payload the device's class key cannot
	// open: encrypted to another class, or corrupted before signing.
	ErrDecrypt = errors.New("cannot decrypt payload")
	// ErrNoRootKey reports a policy without root keys: such a device
	// cannot verify anything and must not boot anything.
	ErrNoRootKey = errors.New("device policy has no root key")
	// ErrAlreadySigned reports an attempt to encrypt a signed image, which
	// would invalidate its signatures.
	ErrAlreadySigned = errors.New("image is already signed")
	// ErrAlreadyEncrypted reports an attempt to encrypt an image twice.
	ErrAlreadyEncrypted = errors.New("image is already encrypted")
	// ErrRetiredRoot reports an image that lacks a signature by a live
	// root key but carries one by a root the device has retired: the
	// vendor moved on from that key, and it alone no longer suffices.
	ErrRetiredRoot = errors.New("signed under a retired root key")
	// ErrRetireUnknownSlot reports an image asking to retire a root-key
	// slot the device does not have.
	ErrRetireUnknownSlot = errors.New("image retires a root-key slot the device does not have")
	// ErrRetireLastRoot reports an image asking to retire every live
	// root-key slot, which would leave a device that boots nothing.
	ErrRetireLastRoot = errors.New("image would retire the last live root key")
)

// ImageType says what an image is for; a device decides which types it boots.
type ImageType uint8

// Image types.
const (
	// TypeIEF is the initial enrolment firmware, run once in the factory.
	TypeIEF ImageType = 1
	// TypeApplication is the device's application firmware.
	TypeApplication ImageType = 2
)

var typeNames = map[ImageType]string{TypeIEF: "ief", TypeApplication: "app"}

// ParseImageType reads "ief" or "app" (also "application").
func ParseImageType(s string) (ImageType, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	if name == "application" {
		name = "app"
	}
	for t, n := range typeNames {
		if n == name {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown image type %q (known: ief, app)", s)
}

func (t ImageType) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return "type-" + strconv.Itoa(int(t))
}

func (t ImageType) known() bool { _, ok := typeNames[t]; return ok }

// Version is the image's version as people read it. Anti-rollback does
// not use it (see Metadata.SecurityCounter): a vendor may ship 2.0.1 after
// 2.1.0 without making 2.1.0 unbootable.
type Version struct{ Major, Minor, Patch uint16 }

// ParseVersion reads MAJOR.MINOR.PATCH, each 0 to 65535 in decimal.
func ParseVersion(s string) (Version, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return Version{}, fmt.Errorf("version %q: want MAJOR.MINOR.PATCH", s)
	}
	var n [3]uint16
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 10, 16)
		if err != nil || (len(p) > 1 && p[0] == '0') {
			return Version{}, fmt.Errorf("version %q: %q is not a number from 0 to 65535", s, p)
		}
		n[i] = uint16(v)
	}
	return Version{n[0], n[1], n[2]}, nil
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// Metadata is what the vendor states about an image when building it.
type Metadata struct {
	Type    ImageType
	Version Version
	// SecurityCounter is the anti-rollback counter: a device refuses an
	// image whose counter is below the one burned into its OTP.
	SecurityCounter uint32
	// RetireSlots lists the root-key slots a device burns the revocation
	// bit of once it has confirmed this image (format version 2). Every
	// live root signs the image, so the vendor's own keys authorise the
	// retirement, never whoever can write flash.
	RetireSlots SlotMask
}

// SlotMask is a set of root-key slots, bit i for slot i (0 to
// MaxRootSlots-1), as in OTP.
type SlotMask uint8

// Has reports whether slot i is in the set.
func (m SlotMask) Has(i int) bool { return i >= 0 && i < 8 && m&(1<<i) != 0 }

// Slots returns the slots in the set in increasing order.
func (m SlotMask) Slots() []int {
	var out []int
	for i := range 8 {
		if m.Has(i) {
			out = append(out, i)
		}
	}
	return out
}

func (m SlotMask) String() string {
	if m == 0 {
		return "none"
	}
	out := ""
	for _, i := range m.Slots() {
		if out != "" {
			out += ","
		}
		out += strconv.Itoa(i)
	}
	return out
}
