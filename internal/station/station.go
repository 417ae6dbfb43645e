package station

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/hallmark-iot/hallmark/internal/atomicfile"
	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/sealing"
)

// Errors callers branch on.
var (
	ErrConfig    = errors.New("invalid station configuration")
	ErrDuplicate = errors.New("duplicate device identity")
	ErrProof     = errors.New("device proof of possession does not verify")
	ErrMismatch  = errors.New("batch directory holds a different batch")
)

// MaxBatch bounds one batch.
const MaxBatch = 10_000_000

// Files in a batch directory.
const (
	batchFile    = "batch.json"
	journalFile  = "journal.jsonl"
	ManifestFile = "manifest.jsonl"
	devicesDir   = "devices"
)

// Config is one batch's work.
type Config struct {
	// Dir holds the batch: its plan, journal, device states and manifest.
	Dir string
	// BatchID names the batch; empty draws a random one.
	BatchID string
	Count   int
	Plan    Plan
	// IEF is the signed initial enrolment firmware image.
	IEF []byte
	// App, if set, is customer firmware programmed and booted after
	// enrolment.
	App []byte
	// RootKeyHashes are burned into each chip's OTP.
	RootKeyHashes [][32]byte
	// ClassKey is the device-class key chips receive for encrypted firmware.
	ClassKey *sealing.PrivateKey
	// LeaveOpen skips locking the chips at the end of provisioning (debug
	// port, key-store window, bootloader), for development boards that
	// must stay debuggable; the manifest records them open, and a product
	// that requires locked devices refuses them.
	LeaveOpen bool
	// Keys holds the station key (KeyName); it must also implement
	// keys.DeviceKeyGenerator when the plan has inject-class devices.
	Keys    keys.Manager
	KeyName string
	Workers int
	Log     *slog.Logger
	// TRNG returns device seq's random source; nil uses crypto/rand. Tests
	// use it to make two chips alike.
	TRNG func(seq int) io.Reader
	// Now is the clock; nil uses time.Now.
	Now func() time.Time
	// TPM is the address of the TPM that tpm-class devices of the batch
	// keep their keys in (device.Config.TPM). The simulation puts every
	// gateway of a batch in one TPM; on a real line each gateway brings
	// its own.
	TPM string
}

// batchInfo is the batch's plan, written once so that a resumed run makes
// the same devices.
type batchInfo struct {
	BatchID string    `json:"batch"`
	Count   int       `json:"count"`
	Plan    Plan      `json:"plan"`
	IEFHash []byte    `json:"ief_sha256"`
	Station string    `json:"station"`
	Created time.Time `json:"created"`
	// LeaveOpen is Config.LeaveOpen: one batch is locked or left open as a
	// whole, resumed or not.
	LeaveOpen bool `json:"leave_open,omitempty"`
}

// Summary reports a finished batch.
type Summary struct {
	BatchID  string
	Enrolled int
	Rejected int
	Resumed  int // devices already recorded when this run started
	// LeftOpen counts the enrolled devices the manifest records as not
	// locked (Config.LeaveOpen, or recorded by a station before locking).
	LeftOpen  int
	ByKind    map[string]int
	Elapsed   time.Duration
	Manifest  string
	Rejection []string // one line per rejected device
}

// Station runs batches with one key store.
type station struct {
	cfg     Config
	info    batchInfo
	signer  crypto.Signer
	gen     keys.DeviceKeyGenerator
	journal *journal
	seen    map[identity.ID]int
	seenMu  sync.Mutex
}

func (c *Config) check() error {
	switch {
	case c.Dir == "":
		return fmt.Errorf("%w: no batch directory", ErrConfig)
	case c.Count < 1 || c.Count > MaxBatch:
		return fmt.Errorf("%w: count %d (want 1 to %d)", ErrConfig, c.Count, MaxBatch)
	case len(c.Plan.Kinds) == 0:
		return fmt.Errorf("%w: empty plan", ErrConfig)
	case len(c.IEF) == 0:
		return fmt.Errorf("%w: no initial enrolment firmware", ErrConfig)
	case len(c.RootKeyHashes) == 0:
		return fmt.Errorf("%w: no root key to burn into OTP", ErrConfig)
	case c.Keys == nil || c.KeyName == "":
		return fmt.Errorf("%w: no station key", ErrConfig)
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.TRNG == nil {
		c.TRNG = func(int) io.Reader { return rand.Reader }
	}
	return nil
}

// Run makes, enrols and records every device of the batch, resuming from
// the journal when the directory holds a batch begun earlier, and writes
// the signed manifest. Devices already recorded are neither made again nor
// recorded twice.
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	start := time.Now()
	st, err := open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer st.journal.close()
	resumed := len(st.journal.entries)
	if err := st.runDevices(ctx); err != nil {
		return nil, err
	}
	sum, err := st.writeManifest(ctx)
	if err != nil {
		return nil, err
	}
	sum.Resumed, sum.Elapsed = resumed, time.Since(start)
	return sum, nil
}

func open(ctx context.Context, cfg Config) (*station, error) {
	signer, err := cfg.Keys.Signer(ctx, cfg.KeyName)
	if err != nil {
		return nil, fmt.Errorf("station key: %w", err)
	}
	stationID, err := identity.FromPublicKey(signer.Public())
	if err != nil {
		return nil, fmt.Errorf("station key: %w", err)
	}
	st := &station{cfg: cfg, signer: signer}
	if gen, ok := cfg.Keys.(keys.DeviceKeyGenerator); ok {
		st.gen = gen
	}
	for _, k := range cfg.Plan.Kinds {
		if k.Class == device.ClassInject && st.gen == nil {
			return nil, fmt.Errorf("%w: the key store cannot generate keys for inject-class devices", ErrConfig)
		}
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, devicesDir), 0o700); err != nil {
		return nil, fmt.Errorf("batch directory: %w", err)
	}
	iefHash := sha256.Sum256(cfg.IEF)
	want := batchInfo{BatchID: cfg.BatchID, Count: cfg.Count, Plan: cfg.Plan, IEFHash: iefHash[:],
		Station: stationID.String(), Created: cfg.Now().UTC(), LeaveOpen: cfg.LeaveOpen}
	if st.info, err = loadOrCreateInfo(filepath.Join(cfg.Dir, batchFile), want); err != nil {
		return nil, err
	}
	if st.journal, err = openJournal(filepath.Join(cfg.Dir, journalFile)); err != nil {
		return nil, err
	}
	st.seen = st.journal.identities()
	return st, nil
}

func loadOrCreateInfo(path string, want batchInfo) (batchInfo, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if want.BatchID == "" {
			id := make([]byte, 8)
			rand.Read(id)
			want.BatchID = fmt.Sprintf("batch-%x", id)
		}
		data, _ := json.MarshalIndent(want, "", "  ")
		if err := atomicfile.Write(path, append(data, '\n'), 0o600); err != nil {
			return want, fmt.Errorf("write batch plan: %w", err)
		}
		return want, nil
	}
	if err != nil {
		return want, fmt.Errorf("read batch plan: %w", err)
	}
	var have batchInfo
	if err := json.Unmarshal(data, &have); err != nil {
		return want, fmt.Errorf("%w: %s: %v", ErrMismatch, path, err)
	}
	switch {
	case want.BatchID != "" && want.BatchID != have.BatchID:
		return have, fmt.Errorf("%w: batch %s, not %s", ErrMismatch, have.BatchID, want.BatchID)
	case have.Count != want.Count:
		return have, fmt.Errorf("%w: batch %s was started with count %d, not %d", ErrMismatch, have.BatchID, have.Count, want.Count)
	case !samePlan(have.Plan, want.Plan):
		return have, fmt.Errorf("%w: batch %s was started with another mix of classes and algorithms", ErrMismatch, have.BatchID)
	case string(have.IEFHash) != string(want.IEFHash):
		return have, fmt.Errorf("%w: batch %s was started with another IEF image", ErrMismatch, have.BatchID)
	case have.Station != want.Station:
		return have, fmt.Errorf("%w: batch %s was started with another station key", ErrMismatch, have.BatchID)
	case have.LeaveOpen != want.LeaveOpen:
		return have, fmt.Errorf("%w: batch %s was started with leave-open %v", ErrMismatch, have.BatchID, have.LeaveOpen)
	}
	return have, nil
}

func samePlan(a, b Plan) bool {
	if len(a.Kinds) != len(b.Kinds) {
		return false
	}
	for i := range a.Kinds {
		if a.Kinds[i] != b.Kinds[i] {
			return false
		}
	}
	return true
}
