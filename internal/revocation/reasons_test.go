package revocation

import (
	"testing"

	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// TestReasonCodesAgree: the store records RFC 5280 CRLReason codes that
// the publisher hands to pki unchanged, so both packages' names for them
// must be the same numbers.
func TestReasonCodesAgree(t *testing.T) {
	for _, c := range []struct {
		name        string
		store, pkix int
	}{
		{"unspecified", store.ReasonUnspecified, pki.ReasonUnspecified},
		{"keyCompromise", store.ReasonKeyCompromise, pki.ReasonKeyCompromise},
		{"superseded", store.ReasonSuperseded, pki.ReasonSuperseded},
		{"cessationOfOperation", store.ReasonCessationOfOperation, pki.ReasonCessationOfOperation},
		{"certificateHold", store.ReasonCertificateHold, pki.ReasonCertificateHold},
	} {
		if c.store != c.pkix {
			t.Errorf("%s: store says %d, pki says %d", c.name, c.store, c.pkix)
		}
	}
}
