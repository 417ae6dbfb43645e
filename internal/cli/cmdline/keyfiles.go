package cmdline

import (
	"crypto"
	"crypto/sha256"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// ReadKey reads a private or public key PEM of any suite.
func (s *Streams) ReadKey(path string) (any, error) {
	data, err := s.ReadInput(path, MaxKeyFile, "key")
	if err != nil {
		return nil, err
	}
	key, err := sigalg.ParseKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", DisplayPath(path), err)
	}
	return key, nil
}

// PublicOf is the public half of a private key, or the public key itself.
func PublicOf(key any) crypto.PublicKey {
	if signer, ok := key.(crypto.Signer); ok {
		return signer.Public()
	}
	return key
}

// ReadClassPublicKey reads a device-class public key, or the public half
// of a class private key file.
func (s *Streams) ReadClassPublicKey(path string) (*sealing.PublicKey, error) {
	data, err := s.ReadInput(path, sealing.MaxKeyPEM, "class key")
	if err != nil {
		return nil, err
	}
	key, err := sealing.ParsePublicKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("read class key %s: %w", DisplayPath(path), err)
	}
	return key, nil
}

// ReadClassPrivateKey reads a device-class private key.
func (s *Streams) ReadClassPrivateKey(path string) (*sealing.PrivateKey, error) {
	data, err := s.ReadInput(path, sealing.MaxKeyPEM, "class key")
	if err != nil {
		return nil, err
	}
	key, err := sealing.ParsePrivateKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("read class key %s: %w", DisplayPath(path), err)
	}
	return key, nil
}

// OptionalClassKey reads the device-class key when a path is given.
func (s *Streams) OptionalClassKey(path string) (*sealing.PrivateKey, error) {
	if path == "" {
		return nil, nil
	}
	return s.ReadClassPrivateKey(path)
}

// RootHashes returns the SHA-256 of each firmware root key's DER SPKI, from
// key files and from hex digests (--root-id).
func (s *Streams) RootHashes(paths, ids []string) ([][sha256.Size]byte, error) {
	var roots [][sha256.Size]byte
	for _, p := range paths {
		key, err := s.ReadKey(p)
		if err != nil {
			return nil, err
		}
		id, err := identity.FromPublicKey(PublicOf(key))
		if err != nil {
			return nil, fmt.Errorf("root key %s: %w", DisplayPath(p), err)
		}
		roots = append(roots, id)
	}
	for _, text := range ids {
		id, err := identity.Parse(text)
		if err != nil {
			return nil, Usagef("--root-id %q: %v", text, err)
		}
		roots = append(roots, id)
	}
	return roots, nil
}

// RequiredRoots reads the vendor root keys to burn into OTP; a chip
// without one would boot nothing.
func (s *Streams) RequiredRoots(paths []string) ([][32]byte, error) {
	if len(paths) == 0 {
		return nil, Usagef("--root FILE is required (the vendor root public key burned into OTP)")
	}
	return s.RootHashes(paths, nil)
}
