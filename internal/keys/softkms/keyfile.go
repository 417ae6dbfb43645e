package softkms

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

const keyFormat = "hallmark-softkms-key/v1"

// keyFile is NAME.key. The public key is stored beside the sealed private
// key and authenticated with it, so PublicKey needs no private-key parsing
// and a swapped public key is caught.
type keyFile struct {
	Format     string    `json:"format"`
	Name       string    `json:"name"`
	Suite      sigalg.ID `json:"suite"`
	PublicKey  []byte    `json:"public_key"`
	Nonce      []byte    `json:"nonce"`
	Ciphertext []byte    `json:"ciphertext"`
}

// aad binds the ciphertext to everything that says what it is: format
// version, key name, suite and public key. The fields before the last
// cannot contain a zero byte, so the encoding is unambiguous.
func (k *keyFile) aad() []byte {
	aad := make([]byte, 0, len(keyFormat)+len(k.Name)+len(k.Suite)+len(k.PublicKey)+3)
	aad = append(aad, keyFormat...)
	aad = append(aad, 0)
	aad = append(aad, k.Name...)
	aad = append(aad, 0)
	aad = append(aad, k.Suite...)
	aad = append(aad, 0)
	return append(aad, k.PublicKey...)
}

// CreateKey generates a key pair of req.Suite, seals it and stores it as
// req.Name, failing with keys.ErrExists if the name is taken.
func (s *Store) CreateKey(ctx context.Context, req keys.CreateKeyRequest) (crypto.PublicKey, error) {
	if err := s.check(ctx, req.Name); err != nil {
		return nil, fmt.Errorf("create key: %w", err)
	}
	suite, err := req.Suite.Suite()
	if err != nil {
		return nil, fmt.Errorf("create key %s: %w", req.Name, err)
	}
	if _, err := os.Lstat(s.path(req.Name)); err == nil {
		return nil, fmt.Errorf("create key %s: %w", req.Name, keys.ErrExists)
	}
	key, err := suite.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("create key %s: %w", req.Name, err)
	}
	data, err := s.seal(req.Name, suite.ID(), key)
	if err != nil {
		forget(key)
		return nil, fmt.Errorf("create key %s: %w", req.Name, err)
	}
	if err := writeNew(s.dir, req.Name+keySuffix, data); err != nil {
		forget(key)
		return nil, fmt.Errorf("create key %s: %w", req.Name, err)
	}
	// The public key is copied out before the private key is forgotten.
	pub, err := sigalg.ParsePublicKey(mustSPKI(key))
	forget(key)
	if err != nil {
		return nil, fmt.Errorf("create key %s: %w", req.Name, err)
	}
	return pub, nil
}

func (s *Store) seal(name string, suite sigalg.ID, key crypto.Signer) ([]byte, error) {
	aead, err := s.sealer()
	if err != nil {
		return nil, err
	}
	der, err := sigalg.MarshalPrivateKey(key)
	if err != nil {
		return nil, err
	}
	defer clear(der)
	spki, err := sigalg.MarshalPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	kf := keyFile{Format: keyFormat, Name: name, Suite: suite, PublicKey: spki, Nonce: make([]byte, aead.NonceSize())}
	rand.Read(kf.Nonce)
	kf.Ciphertext = aead.Seal(nil, kf.Nonce, der, kf.aad())
	data, err := json.Marshal(kf)
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

func mustSPKI(key crypto.Signer) []byte {
	spki, err := sigalg.MarshalPublicKey(key.Public())
	if err != nil {
		return nil // ParsePublicKey reports the empty input
	}
	return spki
}

// open reads and authenticates NAME.key and returns its header and the
// PKCS #8 DER, which the caller must clear.
func (s *Store) open(name string) (*keyFile, []byte, error) {
	aead, err := s.sealer()
	if err != nil {
		return nil, nil, err
	}
	data, err := readPrivateFile(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("%s: %w", name, keys.ErrNotFound)
	}
	if err != nil {
		return nil, nil, pathErr(err)
	}
	var kf keyFile
	if err := decodeCanonical(data, &kf); err != nil {
		return nil, nil, fmt.Errorf("%s%s: %w: %v", name, keySuffix, keys.ErrCorrupt, err)
	}
	if kf.Format != keyFormat {
		return nil, nil, fmt.Errorf("%s%s: %w: format %q, want %q", name, keySuffix, keys.ErrUnsupported, kf.Format, keyFormat)
	}
	if kf.Name != name || len(kf.Nonce) != aead.NonceSize() {
		return nil, nil, fmt.Errorf("%s%s: %w: file is for key %q", name, keySuffix, keys.ErrCorrupt, kf.Name)
	}
	der, err := aead.Open(nil, kf.Nonce, kf.Ciphertext, kf.aad())
	if err != nil {
		return nil, nil, fmt.Errorf("%s%s: %w: authentication failed", name, keySuffix, keys.ErrCorrupt)
	}
	return &kf, der, nil
}

// PublicKey returns the public key of the named key pair, after
// authenticating its file.
func (s *Store) PublicKey(ctx context.Context, name string) (crypto.PublicKey, error) {
	if err := s.check(ctx, name); err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	kf, der, err := s.open(name)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	clear(der)
	pub, err := sigalg.ParsePublicKey(kf.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w: %v", name, keys.ErrCorrupt, err)
	}
	return pub, nil
}

// Signer returns a signer for the named key. The decrypted key is cached
// until Close; the signer refuses to sign once the store is closed.
func (s *Store) Signer(ctx context.Context, name string) (crypto.Signer, error) {
	if err := s.check(ctx, name); err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	s.mu.RLock()
	cached := s.signers[name]
	s.mu.RUnlock()
	if cached != nil {
		return &storeSigner{store: s, name: name, key: cached}, nil
	}
	key, err := s.load(name)
	if err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.aead == nil {
		forget(key)
		return nil, fmt.Errorf("signer: %w", keys.ErrClosed)
	}
	if prev := s.signers[name]; prev != nil {
		forget(key) // another goroutine loaded it meanwhile
		key = prev
	}
	s.signers[name] = key
	return &storeSigner{store: s, name: name, key: key}, nil
}

func (s *Store) load(name string) (crypto.Signer, error) {
	kf, der, err := s.open(name)
	if err != nil {
		return nil, err
	}
	defer clear(der)
	key, err := sigalg.ParsePrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", name, keys.ErrCorrupt, err)
	}
	suite, err := sigalg.SuiteOf(key)
	spki := mustSPKI(key)
	if err != nil || suite.ID() != kf.Suite || string(spki) != string(kf.PublicKey) {
		forget(key)
		return nil, fmt.Errorf("%s: %w: private key does not match its recorded suite or public key", name, keys.ErrCorrupt)
	}
	return key, nil
}

// check refuses a cancelled context, a bad name and a closed store.
func (s *Store) check(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := keys.ValidateName(name); err != nil {
		return err
	}
	_, err := s.sealer()
	return err
}

func (s *Store) path(name string) string {
	return filepath.Join(s.dir, name+keySuffix)
}
