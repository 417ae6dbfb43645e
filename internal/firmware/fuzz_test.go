package firmware

import (
	"bytes"
	"errors"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// FuzzParse starts from valid unsigned, signed, hybrid-signed and
// encrypted images. Whatever Parse accepts must marshal back to exactly
// the same bytes (one image, one encoding), and Verify must decide about
// it without panicking. Verify may accept a changed image (one with the
// non-root signature dropped, say) but never changed content: the header
// and payload must be the ones the root key signed.
func FuzzParse(f *testing.F) {
	ed, mldsa := signer(f, sigalg.Ed25519, 1), signer(f, sigalg.MLDSA44, 1)
	class := classKey(f, sealing.X25519)
	policy := Policy{RootKeyHashes: [][32]byte{rootHash(f, ed), rootHash(f, mldsa)}, Retired: 2, ClassKey: class}
	f.Add(marshal(f, build(f, testMeta, nil, ed)))
	f.Add(marshal(f, build(f, testMeta, nil, ed, mldsa)))
	f.Add(marshal(f, build(f, testMeta, class.Public(), ed)))
	f.Add(marshal(f, build(f, testMeta, nil)))
	f.Add(marshal(f, build(f, Metadata{Type: TypeIEF}, classKey(f, sealing.MLKEM768).Public())))
	// Format version 2: a retirement, plain and encrypted, and a policy
	// that lets the retirement through only with the hybrid signature.
	retire := testMeta
	retire.RetireSlots = 2
	f.Add(marshal(f, build(f, retire, nil, ed, mldsa)))
	f.Add(marshal(f, build(f, retire, class.Public(), ed, mldsa)))
	f.Add(marshal(f, build(f, Metadata{Type: TypeApplication, RetireSlots: 15}, nil, mldsa)))
	f.Add([]byte(Magic))
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse error without ErrMalformed: %v", err)
			}
			return
		}
		again, err := img.MarshalBinary()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("parse then marshal is not the identity (%v)", err)
		}
		v, err := Verify(img, policy)
		if err == nil && (v.Header.Metadata != testMeta && v.Header.Metadata != retire || !bytes.Equal(v.Payload, testCode)) {
			t.Fatalf("Verify accepted changed content: %+v", v.Header)
		}
	})
}
