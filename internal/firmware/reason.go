package firmware

import (
	"errors"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// reasons gives every sentinel of this package a stable code, the word a
// device's update agent reports and a platform counts failures by. Codes
// are never renamed or reused; TestEverySentinelHasAReason keeps the
// table complete.
var reasons = []struct {
	err  error
	code string
}{
	// Before ErrMalformed: Parse wraps a degenerate signer key in
	// ErrMalformed too, and "weak-key" says more.
	{sigalg.ErrWeakKey, "weak-key"},
	{ErrMalformed, "malformed"},
	{ErrUnsigned, "unsigned"},
	{ErrUntrustedKey, "unknown-root"},
	{ErrBadSignature, "signature"},
	{ErrRollback, "rollback"},
	{ErrEncryptedNoKey, "no-class-key"},
	{ErrDecrypt, "decrypt"},
	{ErrNoRootKey, "no-root-key"},
	{ErrAlreadySigned, "already-signed"},
	{ErrAlreadyEncrypted, "already-encrypted"},
	{ErrRetiredRoot, "retired-root"},
	{ErrRetireUnknownSlot, "retire-unknown-slot"},
	{ErrRetireLastRoot, "retire-last-root"},
}

// ReasonCode returns the stable code of the first sentinel err wraps, or
// "" when it wraps none of this package's.
func ReasonCode(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.code
		}
	}
	return ""
}
