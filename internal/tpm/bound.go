package tpm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// What a key manager (internal/keys/tpmkms) adds to the device class's
// keys: a key whose public area carries a label the TPM protects, and the
// identity of the storage root key, so that a store can tell "made by
// another TPM" from "altered" before it loads a key.

// CreateLabelledKey is CreateKey for a key whose public area carries
// label: its authPolicy is set to label, which must be a SHA-256 digest.
// The public area is covered by the private area's integrity check, so
// TPM2_Load refuses a blob whose label was changed, and a caller that
// derives the label from the key's name in its store can detect a blob
// moved to another name.
//
// The key stays usable with its (empty) authValue: userWithAuth is set,
// so the policy is never needed. It must not be satisfiable either; a
// label that is a hash of a caller's own string is not, because a policy
// session reaches a given digest only through a chain of hashes that
// starts from zeros, and reaching an arbitrary digest would take a
// SHA-256 preimage.
func (t *TPM) CreateLabelledKey(ctx context.Context, label []byte) (*Key, KeyBlob, error) {
	if len(label) != sha256.Size {
		return nil, KeyBlob{}, fmt.Errorf("tpm create key: label of %d bytes, want %d", len(label), sha256.Size)
	}
	template := signingKeyTemplate
	template.AuthPolicy = tpm2.TPM2BDigest{Buffer: bytes.Clone(label)}
	return t.createKey(ctx, template)
}

// BlobLabel returns the label (authPolicy) of a key blob that
// ParseKeyBlob accepts; a key made by CreateKey has none.
func BlobLabel(blob KeyBlob) ([]byte, error) {
	if _, err := ParseKeyBlob(blob); err != nil {
		return nil, err
	}
	pub2b, err := tpm2.Unmarshal[tpm2.TPM2BPublic](blob.Public)
	if err != nil {
		return nil, fmt.Errorf("%w: public area: %v", ErrKeyBlob, err)
	}
	pub, err := pub2b.Contents()
	if err != nil {
		return nil, fmt.Errorf("%w: public area: %v", ErrKeyBlob, err)
	}
	return bytes.Clone(pub.AuthPolicy.Buffer), nil
}

// StorageRootName returns the TPM name of the storage root key (the hash
// of its public area). It is the same on every start of one TPM and
// differs on any other TPM, or on this one after its owner hierarchy was
// cleared (a new owner seed): every key blob made before is then lost.
func (t *TPM) StorageRootName(ctx context.Context) ([]byte, error) {
	var name []byte
	err := t.do(ctx, func(conn transport.TPM) error {
		parent, err := srk(conn)
		if err != nil {
			return err
		}
		flush(conn, parent.Handle)
		name = bytes.Clone(parent.Name.Buffer)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("tpm %s: %w", t.addr, err)
	}
	return name, nil
}
