package identity

import "encoding/binary"

// FactoryProofContext names the proof of possession a device gives its
// provisioning station: a signature over a station-chosen nonce and the
// device's identity.
const FactoryProofContext = "hallmark factory proof-of-possession v1"

// MaxNonce bounds the nonce of a proof of possession.
const MaxNonce = 256

// ProofMessage is the message a device signs to prove it holds the key of
// identity id. The context string domain-separates each protocol step, so a
// signature made for one step never verifies for another; the nonce is
// length-prefixed so that context, nonce and identity cannot run into one
// another.
func ProofMessage(context string, nonce []byte, id ID) []byte {
	msg := make([]byte, 0, len(context)+1+2+len(nonce)+Size)
	msg = append(msg, context...)
	msg = append(msg, 0)
	msg = binary.BigEndian.AppendUint16(msg, uint16(len(nonce)))
	msg = append(msg, nonce...)
	return append(msg, id[:]...)
}
