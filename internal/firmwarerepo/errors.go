package firmwarerepo

import (
	"errors"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/identity"
)

// Problem codes of an upload refused (docs/api.md): each says which of
// the boot ROM's rules the image breaks, so a vendor's pipeline can tell
// a signing mistake from a wrong key. Nothing is stored for any of them.
const (
	// CodeMalformed: not a Hallmark image, truncated, trailing data, a
	// payload that does not match its hash, a weak signer key.
	CodeMalformed = "firmware-malformed"
	// CodeUntrusted: unsigned, or signed by none of the product's live
	// roots.
	CodeUntrusted = "firmware-untrusted"
	// CodeHybridIncomplete: signed by some of the product's live roots
	// but not by all, which a device's hybrid AND policy requires.
	CodeHybridIncomplete = "firmware-hybrid-incomplete"
	// CodeRetiredRoot: signed under a retired root and not by the live
	// ones.
	CodeRetiredRoot = "firmware-retired-root"
	// CodeBadSignature: a root's signature does not verify.
	CodeBadSignature = "firmware-bad-signature"
	// CodeBadRetirement: the image retires a slot the product's devices
	// lack, or their last live one.
	CodeBadRetirement = "firmware-bad-retirement"
	// CodeWrongRecipient: the payload is encrypted to a key other than the
	// product's device-class key, or the product has none.
	CodeWrongRecipient = "firmware-wrong-recipient"
	// CodeWrongType: not an application image.
	CodeWrongType = "firmware-wrong-type"
	// CodeNoPolicy: the product has no firmware root keys, so no image
	// could be checked.
	CodeNoPolicy = "firmware-no-policy"
)

// refusal turns what firmware.VerifyEnvelope found into the upload's
// *admin.Error. An untrusted image is told apart as a stranger's or as a
// hybrid image missing a root, because the fixes differ.
func refusal(err error, img *firmware.Image, live [][32]byte) error {
	code := ""
	switch {
	case errors.Is(err, firmware.ErrMalformed):
		code = CodeMalformed
	case errors.Is(err, firmware.ErrUnsigned):
		code = CodeUntrusted
	case errors.Is(err, firmware.ErrRetiredRoot):
		code = CodeRetiredRoot
	case errors.Is(err, firmware.ErrUntrustedKey):
		code = CodeUntrusted
		if signedByAny(img, live) {
			code = CodeHybridIncomplete
		}
	case errors.Is(err, firmware.ErrBadSignature):
		code = CodeBadSignature
	case errors.Is(err, firmware.ErrRetireUnknownSlot), errors.Is(err, firmware.ErrRetireLastRoot):
		code = CodeBadRetirement
	case errors.Is(err, firmware.ErrNoRootKey):
		code = CodeNoPolicy
	default:
		return err
	}
	// firmware's messages name keys by identity and limits by number,
	// never secrets: the vendor is told exactly what failed.
	return &admin.Error{Code: code, Message: err.Error(), Err: err}
}

func signedByAny(img *firmware.Image, roots [][32]byte) bool {
	if img == nil {
		return false
	}
	for _, s := range img.Signatures() {
		for _, r := range roots {
			if s.Signer() == identity.ID(r) {
				return true
			}
		}
	}
	return false
}

func refusef(code, format string, args ...any) error {
	return &admin.Error{Code: code, Message: fmt.Sprintf(format, args...)}
}
