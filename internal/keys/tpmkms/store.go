// Package tpmkms owns Hallmark's TPM key manager: the platform's or the
// station's own signing keys (a CA key, a manifest key) held in the TPM 2.0
// of the host that runs them, behind the "tpm:" URI scheme of package keys.
//
// Keys are ECDSA P-256 keys that the TPM generates under its storage root
// key with fixedTPM and fixedParent (internal/tpm): the private key never
// leaves the TPM in the clear. What the store keeps, one file per key in a
// directory of its own, is the key's public area and its private area as
// the TPM wrapped it; the TPM checks that wrapping's integrity when it
// loads the key, so a file altered on disk or made by another TPM fails
// (keys.ErrCorrupt). The key's name is bound into its public area as a
// label (tpm.CreateLabelledKey), so a file moved to another name fails
// too. tpmkms.json records the name of the TPM's storage root key, so a
// store carried to another TPM, or kept across a clear of the owner
// hierarchy, is refused at Open with that reason rather than key by key.
//
// Authorisation: the owner hierarchy with an empty password, as the device
// class uses it and as a fresh TPM has it, and keys with an empty
// authValue. Options.Passphrase is not used (see docs/keystore.md): on a
// host that signs unattended it sits beside the blobs, and a wrong one
// would count against the TPM's dictionary-attack lockout, which also
// stops the gateway's own device keys. Who may sign is who may both read
// the store directory (mode 0700) and open the TPM.
package tpmkms

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/hallmark-iot/hallmark/internal/atomicfile"
	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/tpm"
)

func init() {
	keys.Register("tpm", func(ctx context.Context, location string, opts keys.Options) (keys.Manager, error) {
		loc, err := ParseLocation(location)
		if err != nil {
			return nil, fmt.Errorf("open key manager tpm:%s: %w", location, err)
		}
		return Open(ctx, loc, opts.Create)
	})
	keys.RegisterLocationCheck("tpm", func(location string) error {
		_, err := ParseLocation(location)
		return err
	})
}

// File formats and names.
const (
	storeFormat = "hallmark-tpmkms/v1"
	keyFormat   = "hallmark-tpmkms-key/v1"
	metaFile    = "tpmkms.json"
	keySuffix   = ".tpmkey"
	maxFileSize = 16 << 10
)

// storeMeta is tpmkms.json.
type storeMeta struct {
	Format string `json:"format"`
	// SRKName is the TPM name of the storage root key the store's keys
	// were made under.
	SRKName []byte `json:"srk_name"`
}

// keyFile is NAME.tpmkey. Neither blob part is secret; the name and suite
// are for people reading the directory, and the name is checked against
// the label the TPM protects.
type keyFile struct {
	Format  string    `json:"format"`
	Name    string    `json:"name"`
	Suite   sigalg.ID `json:"suite"`
	Public  []byte    `json:"public"`
	Private []byte    `json:"private"`
}

// Store is an open TPM key store. It is safe for concurrent use; its TPM
// operations run one at a time.
type Store struct {
	loc Location
	tpm *tpm.TPM

	// mu serialises the store's TPM commands (a TPM runs one at a time,
	// and swtpm serves one connection at a time) and guards closed and
	// loaded. Signing holds it, so Close waits for a signature in flight.
	mu     sync.Mutex
	closed bool
	loaded map[string]*tpm.Key // keys the TPM has loaded once, so verified
}

var _ keys.Manager = (*Store)(nil)

// Open opens the store at loc. With create, a directory that does not
// exist (or is empty) becomes a new store bound to this TPM; without it,
// a directory without a store is keys.ErrNotFound. A store made on
// another TPM is refused (keys.ErrCorrupt and tpm.ErrWrongTPM).
func Open(ctx context.Context, loc Location, create bool) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s, err := open(ctx, loc, create)
	if err != nil {
		return nil, fmt.Errorf("open key store tpm:%s: %w", loc, err)
	}
	return s, nil
}

func open(ctx context.Context, loc Location, create bool) (*Store, error) {
	if !create {
		if _, err := os.Lstat(filepath.Join(loc.Dir, metaFile)); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no TPM key store in %s: %w", loc.Dir, keys.ErrNotFound)
		}
	}
	tp, err := tpm.Open(ctx, loc.Address)
	if err != nil {
		return nil, err
	}
	srkName, err := tp.StorageRootName(ctx)
	if err != nil {
		return nil, err
	}
	if create {
		if err := os.Mkdir(loc.Dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, pathErr(err)
		}
	}
	if err := checkDir(loc.Dir); err != nil {
		return nil, err
	}
	meta, err := readMeta(loc.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		meta, err = initStore(loc.Dir, srkName)
	}
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(meta.SRKName, srkName) {
		return nil, fmt.Errorf("%w: %w: the store was made with another storage root key: it comes from another TPM, or this TPM's owner hierarchy was cleared since; its keys cannot be used here",
			keys.ErrCorrupt, tpm.ErrWrongTPM)
	}
	return &Store{loc: loc, tpm: tp, loaded: map[string]*tpm.Key{}}, nil
}

// checkDir refuses anything but a directory that only its owner can enter:
// the blobs are useless off this TPM, but on it they are the keys.
func checkDir(dir string) error {
	info, err := os.Stat(dir)
	if err != nil {
		return pathErr(err)
	}
	if !info.IsDir() {
		return fmt.Errorf("%s: not a directory", dir)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s: directory mode %#o lets other users in; chmod 700 it", dir, perm)
	}
	return nil
}

// initStore makes tpmkms.json in an empty directory; if another process
// made it first, it reads theirs.
func initStore(dir string, srkName []byte) (*storeMeta, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, pathErr(err)
	}
	for _, e := range entries {
		if !isTempFile(e.Name()) {
			return nil, fmt.Errorf("%s is not empty and has no %s: not a Hallmark TPM key store", dir, metaFile)
		}
	}
	meta := &storeMeta{Format: storeFormat, SRKName: srkName}
	data, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	err = writeNew(dir, metaFile, append(data, '\n'))
	if errors.Is(err, keys.ErrExists) {
		return readMeta(dir)
	}
	if err != nil {
		return nil, err
	}
	return meta, nil
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
	if meta.Format != storeFormat {
		return nil, fmt.Errorf("%s: %w: format %q, want %q", metaFile, keys.ErrUnsupported, meta.Format, storeFormat)
	}
	return &meta, nil
}

// label is what binds a key to its name: the TPM keeps it in the key's
// public area (tpm.CreateLabelledKey).
func label(name string) []byte {
	h := sha256.Sum256([]byte(keyFormat + "\x00" + name))
	return h[:]
}

// CreateKey has the TPM generate an ECDSA P-256 key and stores its blob as
// req.Name. Any other suite is keys.ErrUnsupported: the TPM 2.0 has no
// Ed25519 and no ML-DSA.
func (s *Store) CreateKey(ctx context.Context, req keys.CreateKeyRequest) (crypto.PublicKey, error) {
	if err := s.check(ctx, req.Name); err != nil {
		return nil, fmt.Errorf("create key: %w", err)
	}
	suite, err := req.Suite.Suite()
	if err != nil {
		return nil, fmt.Errorf("create key %s: %w", req.Name, err)
	}
	if suite.ID() != sigalg.ECDSAP256 {
		return nil, fmt.Errorf("create key %s: %w: suite %s: the TPM 2.0 offers no Ed25519 or ML-DSA keys; a TPM key is %s",
			req.Name, keys.ErrUnsupported, suite.ID(), sigalg.ECDSAP256)
	}
	if _, err := os.Lstat(s.path(req.Name)); err == nil {
		return nil, fmt.Errorf("create key %s: %w", req.Name, keys.ErrExists)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("create key %s: %w", req.Name, keys.ErrClosed)
	}
	key, blob, err := s.tpm.CreateLabelledKey(ctx, label(req.Name))
	if err != nil {
		return nil, fmt.Errorf("create key %s: %w", req.Name, err)
	}
	data, err := json.Marshal(keyFile{Format: keyFormat, Name: req.Name, Suite: sigalg.ECDSAP256, Public: blob.Public, Private: blob.Private})
	if err != nil {
		return nil, err
	}
	// The TPM keeps nothing of a key it made: losing this race leaves no
	// trace but the loser's error.
	if err := writeNew(s.loc.Dir, req.Name+keySuffix, append(data, '\n')); err != nil {
		return nil, fmt.Errorf("create key %s: %w", req.Name, err)
	}
	s.loaded[req.Name] = key
	return key.Public(), nil
}

// PublicKey returns the public key of the named key, once the TPM has
// loaded its blob (which checks it) in this store's life.
func (s *Store) PublicKey(ctx context.Context, name string) (crypto.PublicKey, error) {
	key, err := s.key(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	return key.Public(), nil
}

// Signer returns a signer for the named key; it signs in the TPM and
// stops working when the store is closed.
func (s *Store) Signer(ctx context.Context, name string) (crypto.Signer, error) {
	key, err := s.key(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	return &signer{store: s, name: name, key: key}, nil
}

// key returns the named key, loading and checking its blob on first use.
func (s *Store) key(ctx context.Context, name string) (*tpm.Key, error) {
	if err := s.check(ctx, name); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, keys.ErrClosed
	}
	if key := s.loaded[name]; key != nil {
		return key, nil
	}
	blob, err := s.readKeyFile(name)
	if err != nil {
		return nil, err
	}
	key, err := s.tpm.LoadKey(ctx, blob)
	switch {
	case errors.Is(err, tpm.ErrWrongTPM):
		return nil, fmt.Errorf("%s%s: %w: the TPM refuses its blob (altered, or made by another TPM): %w", name, keySuffix, keys.ErrCorrupt, err)
	case err != nil:
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s.loaded[name] = key
	return key, nil
}

// readKeyFile reads NAME.tpmkey and checks what the TPM will not: the
// file's form, and that its label names this key.
func (s *Store) readKeyFile(name string) (tpm.KeyBlob, error) {
	data, err := readPrivateFile(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return tpm.KeyBlob{}, fmt.Errorf("%s: %w", name, keys.ErrNotFound)
	}
	if err != nil {
		return tpm.KeyBlob{}, pathErr(err)
	}
	var kf keyFile
	if err := decodeCanonical(data, &kf); err != nil {
		return tpm.KeyBlob{}, fmt.Errorf("%s%s: %w: %v", name, keySuffix, keys.ErrCorrupt, err)
	}
	if kf.Format != keyFormat {
		return tpm.KeyBlob{}, fmt.Errorf("%s%s: %w: format %q, want %q", name, keySuffix, keys.ErrUnsupported, kf.Format, keyFormat)
	}
	blob := tpm.KeyBlob{Public: kf.Public, Private: kf.Private}
	got, err := tpm.BlobLabel(blob)
	if err != nil {
		return tpm.KeyBlob{}, fmt.Errorf("%s%s: %w: %w", name, keySuffix, keys.ErrCorrupt, err)
	}
	if kf.Name != name || kf.Suite != sigalg.ECDSAP256 {
		return tpm.KeyBlob{}, fmt.Errorf("%s%s: %w: the file is for key %q of suite %s", name, keySuffix, keys.ErrCorrupt, kf.Name, kf.Suite)
	}
	if !bytes.Equal(got, label(name)) {
		return tpm.KeyBlob{}, fmt.Errorf("%s%s: %w: the key's label in the TPM blob is not this name's: the file was moved from another name or edited", name, keySuffix, keys.ErrCorrupt)
	}
	return blob, nil
}

// Close forgets the loaded keys; later calls, and signers handed out
// before, fail with keys.ErrClosed. The TPM holds nothing to release.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	clear(s.loaded)
	return nil
}

// Location returns where the store is.
func (s *Store) Location() Location { return s.loc }

// check refuses a cancelled context and a bad name.
func (s *Store) check(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return keys.ValidateName(name)
}

func (s *Store) path(name string) string { return filepath.Join(s.loc.Dir, name+keySuffix) }

// writeNew writes dir/name with mode 0600, never over an existing file.
func writeNew(dir, name string, data []byte) error {
	err := atomicfile.WriteNew(filepath.Join(dir, name), data, 0o600)
	if errors.Is(err, atomicfile.ErrExists) {
		return fmt.Errorf("%s: %w", name, keys.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", name, pathErr(err))
	}
	return nil
}

// readPrivateFile reads a store file: a regular file, not a link, private
// to its owner and no larger than the store writes.
func readPrivateFile(path string) ([]byte, error) {
	info, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w: not a regular file", filepath.Base(path), keys.ErrCorrupt)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s: file mode %#o lets other users in; chmod 600 it", filepath.Base(path), perm)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s: %w: larger than %d bytes", filepath.Base(path), keys.ErrCorrupt, maxFileSize)
	}
	return data, nil
}

// decodeCanonical accepts only the exact bytes the store writes for a
// value, so that every edit of a file is an error, not another reading.
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

// pathErr drops the "open"/"mkdir" of a *fs.PathError.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

// isTempFile recognises atomicfile's temporary names, which a crash can
// leave behind.
func isTempFile(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-")
}
