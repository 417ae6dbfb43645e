package cmdline

import (
	"context"
	"crypto"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// The "key create" and "key public" commands of the station and of
// firmware roots do the same with a key store; only the role of the key,
// which names its identity in the output, differs.

// CreateKey opens the store (making a software store when the directory
// holds none) and creates the key f.Name of suite in it.
func (f KeyStoreFlags) CreateKey(ctx context.Context, s *Streams, suite sigalg.ID) (crypto.PublicKey, error) {
	m, err := f.Open(ctx, s, true)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	return m.CreateKey(ctx, keys.CreateKeyRequest{Name: f.Name, Suite: suite})
}

// PublicKeyPEM opens the store and returns the public key of f.Name as PEM.
func (f KeyStoreFlags) PublicKeyPEM(ctx context.Context, s *Streams) ([]byte, error) {
	m, err := f.Open(ctx, s, false)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	pub, err := m.PublicKey(ctx, f.Name)
	if err != nil {
		return nil, err
	}
	return sigalg.EncodePublicKeyPEM(pub)
}

// ReportCreatedKey writes a new key's public key PEM to pubOut when asked
// and, unless that went to standard output, prints the key's name, suite
// and identity, labelled role ("station", "root").
func (s *Streams) ReportCreatedKey(pub crypto.PublicKey, suite sigalg.ID, name, role, pubOut string, force bool) error {
	if pubOut != "" {
		pem, err := sigalg.EncodePublicKeyPEM(pub)
		if err != nil {
			return err
		}
		if err := s.WriteOutput(pubOut, pem, 0o644, force); err != nil {
			return err
		}
		if pubOut == Stdio {
			return nil
		}
	}
	id, err := identity.FromPublicKey(pub)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(s.Out, "created key %q (%s)\n%s identity: %s\n", name, suite, role, id)
	return err
}
