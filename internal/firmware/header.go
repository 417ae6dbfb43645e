package firmware

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/sealing"
)

// Header is an image's header as parsed. The payload fields describe the
// payload as stored: the ciphertext when the image is encrypted.
type Header struct {
	Metadata
	// Format is the header's format version: FormatVersion, or
	// FormatVersionRetire when the image retires a root-key slot.
	Format        uint8
	PayloadSize   uint32
	PayloadDigest [sha256.Size]byte
	// Encryption is nil when the payload is stored in the clear.
	Encryption *Encryption
}

// Encryption says how the payload was sealed with HPKE (HKDF-SHA256,
// AES-256-GCM): to which device-class key, and the encapsulated key the
// device needs to open it.
type Encryption struct {
	KEM sealing.KEM
	// Recipient is the fingerprint of the device-class public key.
	Recipient     [sha256.Size]byte
	Encapsulation []byte
}

// Header layout (big-endian); docs/firmware.md has the full table.
const (
	offVersion     = 4
	offType        = 5
	offHeaderSize  = 6
	offFlags       = 8
	offMajor       = 10
	offMinor       = 12
	offPatch       = 14
	offCounter     = 16
	offPayloadSize = 20
	fixedSize      = 24
	// Format version 2 adds the retirement mask right after the fixed
	// part, before the encryption section.
	offRetire   = 24
	retireSize  = 2
	fixedSizeV2 = fixedSize + retireSize
	// The encryption section: KEM ID, recipient fingerprint, length of
	// the encapsulated key, then the key.
	encryptionFixedSize = 2 + sha256.Size + 2
	digestSize          = sha256.Size

	flagEncrypted uint16 = 1 << 0
	knownFlags           = flagEncrypted
)

// format is the version h encodes as: version 2 whenever it retires a
// slot, so no retirement can be dropped by writing it as version 1.
func (h *Header) format() byte {
	if h.Format == FormatVersionRetire || h.RetireSlots != 0 {
		return FormatVersionRetire
	}
	return FormatVersion
}

// fixed is the size of the part of the header before the encryption
// section.
func (h *Header) fixed() int {
	if h.format() == FormatVersionRetire {
		return fixedSizeV2
	}
	return fixedSize
}

// size is the encoded size of h.
func (h *Header) size() int {
	n := h.fixed() + digestSize
	if h.Encryption != nil {
		n += encryptionFixedSize + len(h.Encryption.Encapsulation)
	}
	return n
}

// marshal encodes h. The payload digest comes last so that everything
// before it can be the AEAD's additional data: the digest is of the
// ciphertext, which exists only after sealing.
func (h *Header) marshal() []byte {
	b := make([]byte, h.fixed(), h.size())
	copy(b, Magic)
	b[offVersion] = h.format()
	b[offType] = byte(h.Type)
	binary.BigEndian.PutUint16(b[offHeaderSize:], uint16(h.size()))
	var flags uint16
	if h.Encryption != nil {
		flags |= flagEncrypted
	}
	binary.BigEndian.PutUint16(b[offFlags:], flags)
	binary.BigEndian.PutUint16(b[offMajor:], h.Version.Major)
	binary.BigEndian.PutUint16(b[offMinor:], h.Version.Minor)
	binary.BigEndian.PutUint16(b[offPatch:], h.Version.Patch)
	binary.BigEndian.PutUint32(b[offCounter:], h.SecurityCounter)
	binary.BigEndian.PutUint32(b[offPayloadSize:], h.PayloadSize)
	if h.format() == FormatVersionRetire {
		binary.BigEndian.PutUint16(b[offRetire:], uint16(h.RetireSlots))
	}
	if e := h.Encryption; e != nil {
		b = binary.BigEndian.AppendUint16(b, e.KEM.ID())
		b = append(b, e.Recipient[:]...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(e.Encapsulation)))
		b = append(b, e.Encapsulation...)
	}
	return append(b, h.PayloadDigest[:]...)
}

// aad is the additional data the payload is sealed with: the whole header
// but the payload digest. It binds type, version, security counter, size
// and recipient to the ciphertext, so that whoever signs cannot relabel an
// encrypted payload (as a newer counter, say) without its plaintext.
func (h *Header) aad() []byte {
	b := h.marshal()
	return b[:len(b)-digestSize]
}

// clone returns a deep copy of h.
func (h Header) clone() Header {
	if h.Encryption != nil {
		e := *h.Encryption
		e.Encapsulation = bytes.Clone(e.Encapsulation)
		h.Encryption = &e
	}
	return h
}

// parseHeader decodes the header at the start of data and returns it with
// its size. It checks every field it can without the payload.
func parseHeader(data []byte) (Header, int, error) {
	var h Header
	if len(data) < fixedSize+digestSize {
		return h, 0, fmt.Errorf("%d bytes is too short for a header", len(data))
	}
	if string(data[:len(Magic)]) != Magic {
		return h, 0, fmt.Errorf("no %q magic: not a Hallmark firmware image", Magic)
	}
	fixed := fixedSize
	switch h.Format = data[offVersion]; h.Format {
	case FormatVersion:
	case FormatVersionRetire:
		fixed = fixedSizeV2
		if len(data) < fixed+digestSize {
			return h, 0, fmt.Errorf("%d bytes is too short for a version 2 header", len(data))
		}
		mask := binary.BigEndian.Uint16(data[offRetire:])
		if mask >= 1<<MaxRootSlots {
			return h, 0, fmt.Errorf("retirement mask 0x%04x names slots beyond the %d a device has", mask, MaxRootSlots)
		}
		h.RetireSlots = SlotMask(mask)
	default:
		return h, 0, fmt.Errorf("format version %d is not supported (want %d or %d)", h.Format, FormatVersion, FormatVersionRetire)
	}
	h.Type = ImageType(data[offType])
	if !h.Type.known() {
		return h, 0, fmt.Errorf("unknown image type %d", data[offType])
	}
	size := int(binary.BigEndian.Uint16(data[offHeaderSize:]))
	if size > MaxHeaderSize || size > len(data) || size < fixed+digestSize {
		return h, 0, fmt.Errorf("header size %d out of range", size)
	}
	flags := binary.BigEndian.Uint16(data[offFlags:])
	if flags&^knownFlags != 0 {
		return h, 0, fmt.Errorf("unknown flags 0x%04x", flags&^knownFlags)
	}
	h.Version = Version{
		Major: binary.BigEndian.Uint16(data[offMajor:]),
		Minor: binary.BigEndian.Uint16(data[offMinor:]),
		Patch: binary.BigEndian.Uint16(data[offPatch:]),
	}
	h.SecurityCounter = binary.BigEndian.Uint32(data[offCounter:])
	h.PayloadSize = binary.BigEndian.Uint32(data[offPayloadSize:])
	body := data[fixed : size-digestSize]
	if flags&flagEncrypted != 0 {
		e, err := parseEncryption(body)
		if err != nil {
			return h, 0, err
		}
		h.Encryption = e
	} else if len(body) != 0 {
		return h, 0, fmt.Errorf("header size %d, want %d for a plain image", size, fixed+digestSize)
	}
	copy(h.PayloadDigest[:], data[size-digestSize:size])
	if err := h.checkPayloadSize(); err != nil {
		return h, 0, err
	}
	return h, size, nil
}

func parseEncryption(body []byte) (*Encryption, error) {
	if len(body) < encryptionFixedSize {
		return nil, fmt.Errorf("encryption section of %d bytes is too short", len(body))
	}
	kem, err := sealing.KEMFromID(binary.BigEndian.Uint16(body))
	if err != nil {
		return nil, err
	}
	e := &Encryption{KEM: kem}
	copy(e.Recipient[:], body[2:])
	encSize := int(binary.BigEndian.Uint16(body[2+sha256.Size:]))
	if encSize != kem.EncapsulationSize() || len(body) != encryptionFixedSize+encSize {
		return nil, fmt.Errorf("%s encapsulated key of %d bytes in a %d-byte section, want %d", kem, encSize, len(body), kem.EncapsulationSize())
	}
	e.Encapsulation = bytes.Clone(body[encryptionFixedSize:])
	return e, nil
}

// checkPayloadSize enforces the payload limits: a plain payload of 1 to
// MaxPayloadSize bytes, or its encryption, sealing.Overhead bytes longer.
func (h *Header) checkPayloadSize() error {
	lo, hi := uint32(1), uint32(MaxPayloadSize)
	if h.Encryption != nil {
		lo, hi = lo+sealing.Overhead, hi+sealing.Overhead
	}
	if h.PayloadSize < lo || h.PayloadSize > hi {
		return fmt.Errorf("payload size %d out of range [%d, %d]", h.PayloadSize, lo, hi)
	}
	return nil
}
