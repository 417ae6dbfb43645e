package firmware

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// suiteCodes registers the one-byte code of each signature suite in the
// signature block. Codes are never reused.
var suiteCodes = map[sigalg.ID]byte{
	sigalg.ECDSAP256: 1,
	sigalg.Ed25519:   2,
	sigalg.MLDSA44:   3,
	sigalg.MLDSA65:   4,
	sigalg.MLDSA87:   5,
}

func suiteOfCode(code byte) (sigalg.ID, bool) {
	for id, c := range suiteCodes {
		if c == code {
			return id, true
		}
	}
	return "", false
}

// MarshalBinary encodes the image: header, payload, then the signature
// block (a count, then per signature its suite code, the signer's SPKI and
// the signature, each of the last two after a big-endian uint16 length).
func (img *Image) MarshalBinary() ([]byte, error) {
	hdr := img.header.marshal()
	size := len(hdr) + len(img.payload) + 1
	for _, s := range img.sigs {
		size += 1 + 2 + len(s.PublicKey) + 2 + len(s.Value)
	}
	out := make([]byte, 0, size)
	out = append(out, hdr...)
	out = append(out, img.payload...)
	out = append(out, byte(len(img.sigs)))
	for _, s := range img.sigs {
		out = append(out, suiteCodes[s.Suite])
		out = binary.BigEndian.AppendUint16(out, uint16(len(s.PublicKey)))
		out = append(out, s.PublicKey...)
		out = binary.BigEndian.AppendUint16(out, uint16(len(s.Value)))
		out = append(out, s.Value...)
	}
	return out, nil
}

// Parse decodes an image strictly: every length exact, every limit
// enforced, no unknown version, type, flag, KEM or suite, no trailing
// data, every signer key valid and used once, and the payload matching its
// digest. It does not verify signatures; Verify does. Every error wraps
// ErrMalformed, whose text says what failed.
func Parse(data []byte) (*Image, error) {
	img, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return img, nil
}

func parse(data []byte) (*Image, error) {
	if len(data) > MaxImageSize {
		return nil, fmt.Errorf("%d bytes exceeds the %d-byte limit", len(data), MaxImageSize)
	}
	h, n, err := parseHeader(data)
	if err != nil {
		return nil, err
	}
	rest := data[n:]
	if uint64(len(rest)) < uint64(h.PayloadSize) {
		return nil, fmt.Errorf("payload truncated: %d of %d bytes", len(rest), h.PayloadSize)
	}
	payload := rest[:h.PayloadSize]
	sigs, err := parseSignatures(rest[h.PayloadSize:])
	if err != nil {
		return nil, err
	}
	if !payloadMatches(&h, payload) {
		return nil, fmt.Errorf("payload does not match the SHA-256 in the header")
	}
	return &Image{header: h, payload: bytes.Clone(payload), sigs: sigs}, nil
}

func payloadMatches(h *Header, payload []byte) bool {
	digest := sha256.Sum256(payload)
	return uint64(len(payload)) == uint64(h.PayloadSize) &&
		subtle.ConstantTimeCompare(digest[:], h.PayloadDigest[:]) == 1
}

// parseSignatures decodes the signature block, which must end the image.
func parseSignatures(block []byte) ([]signature, error) {
	if len(block) == 0 {
		return nil, fmt.Errorf("signature block missing")
	}
	count := int(block[0])
	if count > MaxSignatures {
		return nil, fmt.Errorf("%d signatures exceeds the limit of %d", count, MaxSignatures)
	}
	r := reader{data: block[1:]}
	sigs := make([]signature, 0, count)
	for i := range count {
		s, err := parseSignature(&r)
		if err != nil {
			return nil, fmt.Errorf("signature %d: %w", i+1, err)
		}
		for _, prev := range sigs {
			if prev.Signer() == s.Signer() {
				return nil, fmt.Errorf("signature %d: a second signature by %s", i+1, s.Signer())
			}
		}
		sigs = append(sigs, s)
	}
	if len(r.data) != 0 {
		return nil, fmt.Errorf("%d bytes of trailing data", len(r.data))
	}
	return sigs, nil
}

func parseSignature(r *reader) (signature, error) {
	var s signature
	code, ok := r.byte()
	if !ok {
		return s, fmt.Errorf("truncated")
	}
	id, known := suiteOfCode(code)
	if !known {
		return s, fmt.Errorf("unknown suite code %d", code)
	}
	suite, err := id.Suite()
	if err != nil {
		return s, err
	}
	spki, ok := r.lengthPrefixed(sigalg.MaxKeyDER)
	if !ok {
		return s, fmt.Errorf("signer key truncated or longer than %d bytes", sigalg.MaxKeyDER)
	}
	pub, keySuite, err := sigalg.ParsePublicKeyWithSuite(spki)
	if err != nil {
		return s, err
	}
	if keySuite.ID() != id {
		return s, fmt.Errorf("signer key is not a %s key", id)
	}
	value, ok := r.lengthPrefixed(suite.SignatureSize())
	if !ok || len(value) == 0 {
		return s, fmt.Errorf("%s signature empty, truncated or longer than %d bytes", id, suite.SignatureSize())
	}
	s.Signature = Signature{Suite: id, PublicKey: bytes.Clone(spki), Value: bytes.Clone(value)}
	s.pub = pub
	return s, nil
}

// reader consumes a byte slice front to back.
type reader struct{ data []byte }

func (r *reader) byte() (byte, bool) {
	if len(r.data) < 1 {
		return 0, false
	}
	b := r.data[0]
	r.data = r.data[1:]
	return b, true
}

// lengthPrefixed reads a big-endian uint16 length and that many bytes,
// refusing lengths above limit.
func (r *reader) lengthPrefixed(limit int) ([]byte, bool) {
	if len(r.data) < 2 {
		return nil, false
	}
	n := int(binary.BigEndian.Uint16(r.data))
	if n > limit || len(r.data)-2 < n {
		return nil, false
	}
	out := r.data[2 : 2+n]
	r.data = r.data[2+n:]
	return out, true
}
