package continuity

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// MaxProofSize bounds a proof's JSON encoding: an ML-DSA-87 key and two
// ML-DSA-87 signatures in base64 are 15,832 bytes, the rest under 400.
const MaxProofSize = 20 << 10

// ErrTooLarge reports a proof encoding over MaxProofSize.
var ErrTooLarge = errors.New("continuity proof too large")

// The members of a proof's JSON object; every one is required, each once.
const (
	fieldChallengeID  = "challenge_id"
	fieldOldIdentity  = "old_identity"
	fieldOldAlgorithm = "old_algorithm"
	fieldNewIdentity  = "new_identity"
	fieldNewAlgorithm = "new_algorithm"
	fieldNewPublicKey = "new_public_key"
	fieldOldSignature = "old_signature"
	fieldNewSignature = "new_signature"
)

// wireProof is the JSON form: identities and the challenge ID in lowercase
// hex, keys and signatures in standard padded base64.
type wireProof struct {
	ChallengeID  string `json:"challenge_id"`
	OldIdentity  string `json:"old_identity"`
	OldAlgorithm string `json:"old_algorithm"`
	NewIdentity  string `json:"new_identity"`
	NewAlgorithm string `json:"new_algorithm"`
	NewPublicKey string `json:"new_public_key"`
	OldSignature string `json:"old_signature"`
	NewSignature string `json:"new_signature"`
}

// MarshalJSON encodes the proof in the form ParseProof reads.
func (p Proof) MarshalJSON() ([]byte, error) {
	return json.Marshal(wireProof{
		ChallengeID:  hex.EncodeToString(p.ChallengeID[:]),
		OldIdentity:  p.OldIdentity.String(),
		OldAlgorithm: string(p.OldAlgorithm),
		NewIdentity:  p.NewIdentity.String(),
		NewAlgorithm: string(p.NewAlgorithm),
		NewPublicKey: base64.StdEncoding.EncodeToString(p.NewPublicKey),
		OldSignature: base64.StdEncoding.EncodeToString(p.OldSignature),
		NewSignature: base64.StdEncoding.EncodeToString(p.NewSignature),
	})
}

// UnmarshalJSON decodes with ParseProof's rules, so a proof inside a larger
// document is read as strictly as one on its own.
func (p *Proof) UnmarshalJSON(data []byte) error {
	parsed, err := ParseProof(data)
	if err != nil {
		return err
	}
	*p = *parsed
	return nil
}

// ReadProof reads one proof from r, reading at most MaxProofSize+1 bytes.
func ReadProof(r io.Reader) (*Proof, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxProofSize+1))
	if err != nil {
		return nil, fmt.Errorf("continuity: read proof: %w", err)
	}
	return ParseProof(data)
}

// ParseProof decodes a proof's JSON: exactly one object of exactly the
// eight members, each a string, none repeated, none in another case,
// nothing after it, at most MaxProofSize bytes; lowercase hex for the
// challenge ID and identities, canonical padded base64 for the rest,
// algorithms by their suite IDs, every field within its limits. Whether
// the signatures verify is Verify's question.
func ParseProof(data []byte) (*Proof, error) {
	if len(data) > MaxProofSize {
		return nil, fmt.Errorf("continuity: %w: over %d bytes", ErrTooLarge, MaxProofSize)
	}
	members, err := readMembers(data)
	if err != nil {
		return nil, fmt.Errorf("continuity: %w: %w", ErrMalformed, err)
	}
	p, err := fromMembers(members)
	if err != nil {
		return nil, fmt.Errorf("continuity: %w: %w", ErrMalformed, err)
	}
	if _, _, err := p.check(); err != nil {
		return nil, fmt.Errorf("continuity: %w", err)
	}
	return p, nil
}

// readMembers reads a flat JSON object of string members by tokens, which
// lets it refuse what encoding/json accepts silently: a repeated member
// (the last would win) and a member in another case.
func readMembers(data []byte) (map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("want a JSON object")
	}
	members := make(map[string]string, 8)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("invalid JSON at offset %d", dec.InputOffset())
		}
		name, ok := tok.(string)
		if !ok || !known(name) {
			return nil, fmt.Errorf("unknown member %.40q", name)
		}
		if _, dup := members[name]; dup {
			return nil, fmt.Errorf("member %q repeated", name)
		}
		tok, err = dec.Token()
		if err != nil {
			return nil, fmt.Errorf("invalid JSON at offset %d", dec.InputOffset())
		}
		value, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("member %q must be a string", name)
		}
		members[name] = value
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, fmt.Errorf("invalid JSON at offset %d", dec.InputOffset())
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the JSON object at offset %d", dec.InputOffset())
	}
	return members, nil
}

func known(name string) bool {
	switch name {
	case fieldChallengeID, fieldOldIdentity, fieldOldAlgorithm, fieldNewIdentity,
		fieldNewAlgorithm, fieldNewPublicKey, fieldOldSignature, fieldNewSignature:
		return true
	}
	return false
}

// fromMembers decodes each member; all are required.
func fromMembers(m map[string]string) (*Proof, error) {
	if len(m) != 8 {
		for _, name := range []string{fieldChallengeID, fieldOldIdentity, fieldOldAlgorithm, fieldNewIdentity,
			fieldNewAlgorithm, fieldNewPublicKey, fieldOldSignature, fieldNewSignature} {
			if _, ok := m[name]; !ok {
				return nil, fmt.Errorf("member %q missing", name)
			}
		}
	}
	p := &Proof{OldAlgorithm: sigalg.ID(m[fieldOldAlgorithm]), NewAlgorithm: sigalg.ID(m[fieldNewAlgorithm])}
	var err error
	if p.ChallengeID, err = parseChallengeID(m[fieldChallengeID]); err != nil {
		return nil, err
	}
	if p.OldIdentity, err = identity.Parse(m[fieldOldIdentity]); err != nil {
		return nil, fmt.Errorf("%s: %w", fieldOldIdentity, err)
	}
	if p.NewIdentity, err = identity.Parse(m[fieldNewIdentity]); err != nil {
		return nil, fmt.Errorf("%s: %w", fieldNewIdentity, err)
	}
	if p.NewPublicKey, err = decodeBase64(fieldNewPublicKey, m[fieldNewPublicKey], MaxPublicKey); err != nil {
		return nil, err
	}
	if p.OldSignature, err = decodeBase64(fieldOldSignature, m[fieldOldSignature], MaxSignature); err != nil {
		return nil, err
	}
	if p.NewSignature, err = decodeBase64(fieldNewSignature, m[fieldNewSignature], MaxSignature); err != nil {
		return nil, err
	}
	return p, nil
}

// parseChallengeID reads 32 lowercase hex characters, the one spelling.
func parseChallengeID(s string) ([ChallengeIDSize]byte, error) {
	var id [ChallengeIDSize]byte
	bad := len(s) != 2*ChallengeIDSize
	for i := 0; !bad && i < len(s); i++ {
		c := s[i]
		bad = !('0' <= c && c <= '9' || 'a' <= c && c <= 'f')
	}
	if bad {
		return id, fmt.Errorf("%s: want %d lowercase hex characters", fieldChallengeID, 2*ChallengeIDSize)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("%s: %w", fieldChallengeID, err)
	}
	return id, nil
}

// decodeBase64 reads canonical padded base64 of at most limit bytes; the
// length is checked before decoding so an oversize member costs nothing.
func decodeBase64(name, s string, limit int) ([]byte, error) {
	if len(s) > base64.StdEncoding.EncodedLen(limit) {
		return nil, fmt.Errorf("%s: over %d bytes", name, limit)
	}
	// Re-encoding catches what Strict lets through: the decoder skips
	// line breaks, so "QUJD\nRA==" would be a second spelling.
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || base64.StdEncoding.EncodeToString(b) != s {
		return nil, fmt.Errorf("%s: not canonical base64", name)
	}
	if len(b) > limit {
		return nil, fmt.Errorf("%s: over %d bytes", name, limit)
	}
	return b, nil
}
