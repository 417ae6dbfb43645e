//go:build !cgo

package pkcs11kms_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/keys"
	_ "github.com/hallmark-iot/hallmark/internal/keys/pkcs11kms"
)

// TestNoCgo: a build without cgo knows the scheme and says why it cannot
// serve it, without showing a pin-value.
func TestNoCgo(t *testing.T) {
	_, err := keys.Open(context.Background(), "pkcs11:token=ca?pin-source=file:/etc/hallmark/pin", keys.Options{})
	if !errors.Is(err, keys.ErrUnsupported) || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Fatalf("pkcs11 without cgo: %v", err)
	}
	// The URI is still checked first, and a pin-value is not repeated.
	_, err = keys.Open(context.Background(), "pkcs11:token=ca?pin-value=123456", keys.Options{})
	if err == nil || !strings.Contains(err.Error(), "pin-value") || strings.Contains(err.Error(), "123456") {
		t.Fatalf("pkcs11 URI with a pin-value without cgo: %v", err)
	}
}
