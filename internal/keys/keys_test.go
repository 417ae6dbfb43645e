package keys_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/keys"
)

func TestValidateName(t *testing.T) {
	for name, ok := range map[string]bool{
		"station": true, "a": true, "9": true, "ca-root.2026_v1": true,
		"": false, "Station": false, "../x": false, "x/y": false, ".x": false, "-x": false,
		"x y": false, "x\n": false, string(make([]byte, 3)): false,
		"a123456789012345678901234567890123456789012345678901234567890123":  true,
		"a1234567890123456789012345678901234567890123456789012345678901234": false,
	} {
		err := keys.ValidateName(name)
		if ok != (err == nil) || (!ok && !errors.Is(err, keys.ErrInvalidName)) {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

func TestOpenUnknownScheme(t *testing.T) {
	for _, uri := range []string{"pkcs11:token=x", "tpm:/dev/tpmrm0", "nope:/x"} {
		if _, err := keys.Open(context.Background(), uri, keys.Options{}); !errors.Is(err, keys.ErrUnsupported) {
			t.Errorf("Open(%q): %v, want ErrUnsupported", uri, err)
		}
	}
	if _, err := keys.Open(context.Background(), "/just/a/path", keys.Options{}); err == nil || errors.Is(err, keys.ErrUnsupported) {
		t.Errorf("Open of a URI without a scheme: %v, want a usage hint", err)
	}
}

// TestCheckURI: CheckURI refuses what Open refuses, for the same reason,
// and accepts a registered scheme without opening anything.
func TestCheckURI(t *testing.T) {
	keys.Register("checkuri-test", func(context.Context, string, keys.Options) (keys.Manager, error) {
		t.Fatal("CheckURI opened the store")
		return nil, nil
	})
	if err := keys.CheckURI("checkuri-test:/somewhere"); err != nil {
		t.Fatalf("CheckURI of a registered scheme: %v", err)
	}
	for _, uri := range []string{"pkcs11:token=x", "nope:/x"} {
		err := keys.CheckURI(uri)
		_, openErr := keys.Open(context.Background(), uri, keys.Options{})
		if !errors.Is(err, keys.ErrUnsupported) || err.Error() != openErr.Error() {
			t.Errorf("CheckURI(%q) = %v, want Open's %v", uri, err, openErr)
		}
	}
	if err := keys.CheckURI("pkcs11:token=x"); !strings.Contains(err.Error(), "PKCS #11") {
		t.Errorf("CheckURI(pkcs11:) = %v, want the reason it is not built", err)
	}
	// A backend's own location check runs without opening anything.
	keys.Register("checked-test", func(context.Context, string, keys.Options) (keys.Manager, error) {
		t.Fatal("CheckURI opened the store")
		return nil, nil
	})
	keys.RegisterLocationCheck("checked-test", func(loc string) error {
		if loc != "good" {
			return errors.New("location must be good")
		}
		return nil
	})
	if err := keys.CheckURI("checked-test:good"); err != nil {
		t.Errorf("CheckURI of a location its backend accepts: %v", err)
	}
	if err := keys.CheckURI("checked-test:bad"); err == nil || !strings.Contains(err.Error(), "location must be good") {
		t.Errorf("CheckURI of a location its backend refuses: %v", err)
	}
	for _, uri := range []string{"", "/just/a/path", "checkuri-test:"} {
		if err := keys.CheckURI(uri); err == nil || errors.Is(err, keys.ErrUnsupported) {
			t.Errorf("CheckURI(%q) = %v, want a usage error", uri, err)
		}
	}
}
