// Package softkms owns Hallmark's software key store: a directory of
// signing keys, each encrypted at rest under a key derived from a
// passphrase. It implements keys.Manager and keys.DeviceKeyGenerator and
// registers the "soft:" URI scheme with package keys.
//
// On disk (see docs/keystore.md): keystore.json holds the PBKDF2 salt and
// iteration count and a random 256-bit master key sealed with AES-256-GCM
// under the passphrase-derived key; NAME.key holds one key's PKCS #8 DER
// sealed under the master key, with the format version, name, suite and
// public key as additional data, so a file moved to another name, or edited,
// does not open. The slow derivation runs once per Open, not once per key,
// and a passphrase change would rewrite only keystore.json.
//
// It protects keys on a stolen disk or backup, not from anyone who can read
// the station's memory or its passphrase; an HSM backend is for that.
package softkms

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/hallmark-iot/hallmark/internal/keys"
)

func init() {
	keys.Register("soft", func(ctx context.Context, location string, opts keys.Options) (keys.Manager, error) {
		if opts.Create {
			return Open(ctx, location, opts.Passphrase)
		}
		return Open(ctx, location, opts.Passphrase, ExistingOnly())
	})
}

// Store formats and KDF parameters. New stores use DefaultKDFRounds,
// OWASP's 2023 figure for PBKDF2-HMAC-SHA256. The count is stored with the
// salt; a store asking for absurdly many is refused so it cannot hang Open.
// Reading accepts counts down to minKDFRounds because lowering the count in
// keystore.json gains nothing without the passphrase: the count is an input
// of the key that must open the master key.
const (
	storeFormat      = "hallmark-softkms/v1"
	kdfName          = "pbkdf2-hmac-sha256"
	DefaultKDFRounds = 600_000
	minKDFRounds     = 1_000
	maxKDFRounds     = 20_000_000
	saltSize         = 32
	masterKeySize    = 32
	// MinPassphrase bounds the passphrase of a new store from below; the
	// KDF slows guessing but cannot save a four-letter word.
	MinPassphrase = 8
	metaFile      = "keystore.json"
	keySuffix     = ".key"
	maxFileSize   = 64 << 10
)

// Option adjusts how Open creates a store.
type Option func(*config)

type config struct {
	rounds       int
	existingOnly bool
}

// ExistingOnly makes Open fail with keys.ErrNotFound instead of creating a
// store, for commands that only use keys: a mistyped directory must not
// silently become a new, empty store.
func ExistingOnly() Option {
	return func(c *config) { c.existingOnly = true }
}

// InsecureKDFIterations makes a new store use n PBKDF2 iterations (at
// least 1,000) instead of DefaultKDFRounds. It exists for tests that open
// many stores: each Open at the default count costs about 0.1 s, several
// times that under the race detector. A store made with it falls to
// passphrase guessing that much faster. It has no effect on an existing
// store, whose count is fixed at creation.
func InsecureKDFIterations(n int) Option {
	return func(c *config) { c.rounds = n }
}

// masterAAD binds the sealed master key to its role, so that no other
// ciphertext of the store can be offered in its place.
var masterAAD = []byte(storeFormat + "\x00master key")

// storeMeta is keystore.json.
type storeMeta struct {
	Format     string `json:"format"`
	KDF        string `json:"kdf"`
	Iterations int    `json:"iterations"`
	Salt       []byte `json:"salt"`
	Nonce      []byte `json:"nonce"`
	MasterKey  []byte `json:"master_key"`
}

// Store is an open software key store. It is safe for concurrent use.
type Store struct {
	dir string

	// mu guards aead and signers; signing holds it for reading, so Close
	// cannot wipe a key in use.
	mu      sync.RWMutex
	aead    cipher.AEAD // under the master key; nil once closed
	signers map[string]crypto.Signer
}

var (
	_ keys.Manager            = (*Store)(nil)
	_ keys.DeviceKeyGenerator = (*Store)(nil)
)

// Open opens the key store in dir, creating it if dir does not exist or is
// an empty directory: a new store is made with mode 0700, a fresh salt and
// master key, and requires a passphrase of at least MinPassphrase bytes. An
// existing store is opened only with the passphrase it was made with
// (keys.ErrPassphrase otherwise). A non-empty directory that is not a store
// is refused rather than adopted. Directories readable or writable by
// group or others are refused, as ssh refuses such key files.
//
// Open keeps no reference to passphrase; the caller may zero it afterwards.
// Opening derives the passphrase key once, about 0.1 s, however many keys
// the store holds.
func Open(ctx context.Context, dir string, passphrase []byte, opts ...Option) (*Store, error) {
	cfg := config{rounds: DefaultKDFRounds}
	for _, opt := range opts {
		opt(&cfg)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if dir == "" {
		return nil, errors.New("open key store: no directory given")
	}
	if len(passphrase) == 0 {
		return nil, fmt.Errorf("open key store %s: %w: empty passphrase", dir, keys.ErrPassphrase)
	}
	if cfg.existingOnly {
		if _, err := os.Stat(filepath.Join(dir, metaFile)); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("open key store %s: no key store in this directory: %w", dir, keys.ErrNotFound)
		}
	}
	if err := prepareDir(dir); err != nil {
		return nil, fmt.Errorf("open key store %s: %w", dir, err)
	}
	aead, err := unlockOrCreate(dir, passphrase, cfg)
	if err != nil {
		return nil, fmt.Errorf("open key store %s: %w", dir, err)
	}
	return &Store{dir: dir, aead: aead, signers: map[string]crypto.Signer{}}, nil
}

// prepareDir makes dir (mode 0700) if it is absent and checks that it is a
// private directory.
func prepareDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return pathErr(err)
	}
	info, err := os.Stat(dir)
	if err != nil {
		return pathErr(err)
	}
	if !info.IsDir() {
		return errors.New("not a directory")
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("directory mode %#o lets other users in; chmod 700 it", perm)
	}
	return nil
}

// checkEmpty refuses to make a store in a directory that holds anything but
// temporary files a crashed write may have left, or the keystore.json that
// a concurrent Open has just made (initStore then opens that one).
func checkEmpty(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return pathErr(err)
	}
	for _, e := range entries {
		if e.Name() != metaFile && !isTempFile(e.Name()) {
			return fmt.Errorf("directory is not empty and has no %s: not a Hallmark key store", metaFile)
		}
	}
	return nil
}

// unlockOrCreate opens the store's master key, making the store first if
// there is none. The slow derivation runs exactly once either way.
func unlockOrCreate(dir string, passphrase []byte, cfg config) (cipher.AEAD, error) {
	meta, err := readMeta(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := checkEmpty(dir); err != nil {
			return nil, err
		}
		aead, initErr := initStore(dir, passphrase, cfg)
		if !errors.Is(initErr, keys.ErrExists) {
			return aead, initErr
		}
		// Another process made the store first; open theirs.
		meta, err = readMeta(dir)
	}
	if err != nil {
		return nil, err
	}
	return unlock(meta, passphrase)
}

func initStore(dir string, passphrase []byte, cfg config) (cipher.AEAD, error) {
	if len(passphrase) < MinPassphrase {
		return nil, fmt.Errorf("new key store: passphrase is %d bytes, want at least %d", len(passphrase), MinPassphrase)
	}
	if cfg.rounds < minKDFRounds || cfg.rounds > maxKDFRounds {
		return nil, fmt.Errorf("new key store: %d KDF iterations, want %d to %d", cfg.rounds, minKDFRounds, maxKDFRounds)
	}
	meta := &storeMeta{Format: storeFormat, KDF: kdfName, Iterations: cfg.rounds, Salt: make([]byte, saltSize)}
	rand.Read(meta.Salt)
	kek, err := deriveKEK(passphrase, meta.Salt, meta.Iterations)
	if err != nil {
		return nil, err
	}
	master := make([]byte, masterKeySize)
	defer clear(master)
	rand.Read(master)
	meta.Nonce = make([]byte, kek.NonceSize())
	rand.Read(meta.Nonce)
	meta.MasterKey = kek.Seal(nil, meta.Nonce, master, masterAAD)
	data, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	if err := writeNew(dir, metaFile, append(data, '\n')); err != nil {
		return nil, err
	}
	return newGCM(master)
}

func readMeta(dir string) (*storeMeta, error) {
	data, err := readPrivateFile(filepath.Join(dir, metaFile))
	if err != nil {
		return nil, err
	}
	var meta storeMeta
	if err := decodeCanonical(data, &meta); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", metaFile, keys.ErrCorrupt, err)
	}
	switch {
	case meta.Format != storeFormat:
		return nil, fmt.Errorf("%s: %w: format %q, want %q", metaFile, keys.ErrUnsupported, meta.Format, storeFormat)
	case meta.KDF != kdfName:
		return nil, fmt.Errorf("%s: %w: KDF %q, want %q", metaFile, keys.ErrUnsupported, meta.KDF, kdfName)
	case meta.Iterations < minKDFRounds || meta.Iterations > maxKDFRounds:
		return nil, fmt.Errorf("%s: %w: %d KDF iterations, want %d to %d", metaFile, keys.ErrCorrupt, meta.Iterations, minKDFRounds, maxKDFRounds)
	case len(meta.Salt) != saltSize || len(meta.MasterKey) != masterKeySize+16 || len(meta.Nonce) != 12:
		return nil, fmt.Errorf("%s: %w: wrong field sizes", metaFile, keys.ErrCorrupt)
	}
	return &meta, nil
}

// unlock derives the key-encryption key once and opens the master key; a
// GCM tag failure here means the passphrase is wrong (or keystore.json was
// edited, which only someone who knows the passphrase can do usefully).
func unlock(meta *storeMeta, passphrase []byte) (cipher.AEAD, error) {
	kek, err := deriveKEK(passphrase, meta.Salt, meta.Iterations)
	if err != nil {
		return nil, err
	}
	master, err := kek.Open(nil, meta.Nonce, meta.MasterKey, masterAAD)
	if err != nil {
		return nil, keys.ErrPassphrase
	}
	defer clear(master)
	return newGCM(master)
}

func deriveKEK(passphrase, salt []byte, iterations int) (cipher.AEAD, error) {
	// pbkdf2.Key takes a string, an immutable copy we cannot wipe; the
	// derived key itself is wiped once the cipher is keyed.
	kek, err := pbkdf2.Key(sha256.New, string(passphrase), salt, iterations, 32)
	if err != nil {
		return nil, fmt.Errorf("derive key-encryption key: %w", err)
	}
	defer clear(kek)
	return newGCM(kek)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Close forgets the master key and every cached signer. Further calls on
// the store fail with keys.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, signer := range s.signers {
		forget(signer)
		delete(s.signers, name)
	}
	s.aead = nil
	return nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// sealer returns the master-key cipher, or ErrClosed.
func (s *Store) sealer() (cipher.AEAD, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.aead == nil {
		return nil, keys.ErrClosed
	}
	return s.aead, nil
}

// decodeCanonical decodes a store file and refuses anything but the exact
// bytes the store writes for that value: unknown, duplicate or
// differently-cased fields, other spacing, other base64. Every change to a
// file is then an error, not a silently different reading.
func decodeCanonical(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	again, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if !bytes.Equal(append(again, '\n'), data) {
		return errors.New("not in the canonical form this store writes")
	}
	return nil
}

// isTempFile recognises atomicfile's temporary names, which a crash can
// leave behind.
func isTempFile(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-")
}
