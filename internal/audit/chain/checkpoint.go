package chain

import (
	"crypto"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// ErrCheckpoint reports a checkpoint whose signature does not verify under
// the audit key, or that names another key.
var ErrCheckpoint = errors.New("audit checkpoint not signed by the audit key")

// KeyID names an audit public key: the hex SHA-256 of its
// SubjectPublicKeyInfo.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := sigalg.MarshalPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("audit key: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// CheckpointMessage is what a checkpoint's signature covers: the tag, then
// Seq, First and Time (Unix microseconds) as big-endian int64s, the head,
// and the suite and key ID, each length-prefixed.
func CheckpointMessage(c store.AuditCheckpoint) []byte {
	b := []byte(CheckpointTag)
	b = binary.BigEndian.AppendUint64(b, uint64(c.Seq))
	b = binary.BigEndian.AppendUint64(b, uint64(c.First))
	b = binary.BigEndian.AppendUint64(b, uint64(c.Time.UnixMicro()))
	b = append(b, c.Head[:]...)
	for _, f := range []string{c.Alg, c.KeyID} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// SignCheckpoint fills in the key, suite and signature of a checkpoint of
// head at pos.
func SignCheckpoint(key crypto.Signer, head store.ChainLink, first int64, at time.Time) (store.AuditCheckpoint, error) {
	suite, err := sigalg.SuiteOf(key)
	if err != nil {
		return store.AuditCheckpoint{}, fmt.Errorf("audit key: %w", err)
	}
	id, err := KeyID(key.Public())
	if err != nil {
		return store.AuditCheckpoint{}, err
	}
	c := store.AuditCheckpoint{Seq: head.Pos, Head: head.Hash, First: first, Time: at.UTC().Truncate(time.Microsecond),
		KeyID: id, Alg: string(suite.ID())}
	if c.Signature, err = sigalg.Sign(key, CheckpointMessage(c)); err != nil {
		return store.AuditCheckpoint{}, fmt.Errorf("sign audit checkpoint: %w", err)
	}
	return c, nil
}

// VerifyCheckpoint checks c's signature under pub, the audit key.
func VerifyCheckpoint(pub crypto.PublicKey, c store.AuditCheckpoint) error {
	suite, err := sigalg.SuiteOf(pub)
	if err != nil {
		return fmt.Errorf("audit key: %w", err)
	}
	id, err := KeyID(pub)
	if err != nil {
		return err
	}
	// The suite and key ID are signed too; comparing them first gives a
	// clearer message than a failed signature.
	if c.KeyID != id || c.Alg != string(suite.ID()) {
		return fmt.Errorf("%w: checkpoint %d names key %.16s… (%s)", ErrCheckpoint, c.Seq, c.KeyID, c.Alg)
	}
	if err := suite.Verify(pub, CheckpointMessage(c), c.Signature); err != nil {
		return fmt.Errorf("%w: checkpoint %d: bad signature", ErrCheckpoint, c.Seq)
	}
	return nil
}
