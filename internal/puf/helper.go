package puf

import (
	"errors"
	"fmt"
)

// Helper-data layout, version 1 (all fields fixed size, HelperSize bytes):
//
//	offset  size  field
//	0       4     magic "HMPF"
//	4       1     format version (1)
//	5       1     inner code ID (1 = repetition, length 7)
//	6       1     outer code ID (1 = BCH(418,256,t=19) over GF(2^9), x^9+x^4+1)
//	7       16    HKDF salt
//	23      16    check tag
//	39      366   code offset: PUFBits bits, bit i in byte i/8 at i%8, 2 zero padding bits
//
// The code IDs let a future format or code change be rejected cleanly by old
// parsers instead of silently reconstructing garbage.
const (
	SaltSize   = 16
	CheckSize  = 16
	OffsetSize = (PUFBits + 7) / 8
	HelperSize = len(helperMagic) + 3 + SaltSize + CheckSize + OffsetSize

	helperMagic   = "HMPF"
	helperVersion = 1
	innerCodeID   = 1
	outerCodeID   = 1
	headerSize    = len(helperMagic) + 3
)

// ErrMalformedHelper is wrapped by every helper-data parsing error.
var ErrMalformedHelper = errors.New("malformed PUF helper data")

// HelperData is the public output of enrolment. It reveals nothing useful
// about the seed on its own but must be stored with the device.
type HelperData struct {
	// Salt is the HKDF salt, random per enrolment.
	Salt [SaltSize]byte
	// Check lets reconstruction detect a wrong result: HKDF of the
	// reference under a label distinct from the seed's.
	Check [CheckSize]byte
	// Offset is the enrolment reference XOR the codeword.
	Offset [OffsetSize]byte
}

// ParseHelperData decodes helper data in the version-1 format. It is strict:
// the length must be exact, the version and code IDs known and the padding
// bits zero, so that every accepted input has exactly one encoding.
func ParseHelperData(data []byte) (*HelperData, error) {
	if len(data) != HelperSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrMalformedHelper, len(data), HelperSize)
	}
	if string(data[:len(helperMagic)]) != helperMagic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrMalformedHelper, data[:len(helperMagic)])
	}
	if v := data[4]; v != helperVersion {
		return nil, fmt.Errorf("%w: unsupported version %d", ErrMalformedHelper, v)
	}
	if id := data[5]; id != innerCodeID {
		return nil, fmt.Errorf("%w: unknown inner code %d", ErrMalformedHelper, id)
	}
	if id := data[6]; id != outerCodeID {
		return nil, fmt.Errorf("%w: unknown outer code %d", ErrMalformedHelper, id)
	}
	h := new(HelperData)
	rest := data[headerSize:]
	rest = rest[copy(h.Salt[:], rest):]
	rest = rest[copy(h.Check[:], rest):]
	copy(h.Offset[:], rest)
	if err := h.validate(); err != nil {
		return nil, err
	}
	return h, nil
}

// validate checks what the type system cannot: the padding bits after the
// last offset bit are zero.
func (h *HelperData) validate() error {
	if h == nil {
		return fmt.Errorf("%w: missing", ErrMalformedHelper)
	}
	const padMask = byte(0xff << (PUFBits % 8) & 0xff)
	if PUFBits%8 != 0 && h.Offset[OffsetSize-1]&padMask != 0 {
		return fmt.Errorf("%w: nonzero padding bits", ErrMalformedHelper)
	}
	return nil
}

// MarshalBinary encodes h in the version-1 format.
func (h *HelperData) MarshalBinary() ([]byte, error) {
	if err := h.validate(); err != nil {
		return nil, fmt.Errorf("marshal: %w", err)
	}
	out := make([]byte, 0, HelperSize)
	out = append(out, helperMagic...)
	out = append(out, helperVersion, innerCodeID, outerCodeID)
	out = append(out, h.Salt[:]...)
	out = append(out, h.Check[:]...)
	out = append(out, h.Offset[:]...)
	return out, nil
}

// UnmarshalBinary decodes data like ParseHelperData into h.
func (h *HelperData) UnmarshalBinary(data []byte) error {
	p, err := ParseHelperData(data)
	if err != nil {
		return err
	}
	*h = *p
	return nil
}
