package continuity

import (
	"encoding/binary"

	"github.com/hallmark-iot/hallmark/internal/identity"
)

// The context strings of the two signatures. Each names the protocol, the
// signer's role and the version, so a signature by the old key is never
// the new key's, and neither is an onboarding, factory, firmware or
// manifest signature (those have contexts of their own, docs/crypto.md).
const (
	OldKeyContext = "hallmark continuity proof v1 old key"
	NewKeyContext = "hallmark continuity proof v1 new key"
)

// role is which of the two keys signs.
type role int

const (
	roleOld role = iota
	roleNew
)

// message is what the key of role r signs (docs/migration.md, "Continuity
// proof"): identity.ProofMessage's framing — context, 0x00, u16 length of
// the transcript, the transcript, the signer's own identity — around a
// transcript in which every field is a u16 length followed by its bytes.
// Both signatures cover the same transcript; the context and the trailing
// identity are what differ between the roles. Callers keep every field
// within the package's limits, which keep each length, and the whole
// transcript, below 65,536 bytes.
func message(r role, ch Challenge, p *Proof) []byte {
	t := transcript(ch, p)
	if r == roleOld {
		return identity.ProofMessage(OldKeyContext, t, p.OldIdentity)
	}
	return identity.ProofMessage(NewKeyContext, t, p.NewIdentity)
}

// transcript binds the challenge (ID, nonce, server name), both identities
// and algorithms, and the new key itself.
func transcript(ch Challenge, p *Proof) []byte {
	fields := [][]byte{
		ch.ID[:],
		ch.Nonce,
		[]byte(ch.ServerName),
		[]byte(p.OldAlgorithm),
		p.OldIdentity[:],
		[]byte(p.NewAlgorithm),
		p.NewIdentity[:],
		p.NewPublicKey,
	}
	size := 0
	for _, f := range fields {
		size += 2 + len(f)
	}
	t := make([]byte, 0, size)
	for _, f := range fields {
		t = binary.BigEndian.AppendUint16(t, uint16(len(f)))
		t = append(t, f...)
	}
	return t
}
