package station

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// ErrJournal reports a journal the station cannot trust.
var ErrJournal = errors.New("damaged batch journal")

// maxJournalLine bounds one journal line: an ML-DSA-87 record is under 12 KiB.
const maxJournalLine = 64 << 10

// Record is one enrolled device as the station verified it.
type Record struct {
	Identity  identity.ID `json:"identity"`
	Algorithm sigalg.ID   `json:"algorithm"`
	PublicKey []byte      `json:"public_key"`
	Class     string      `json:"root_of_trust"`
	Injection string      `json:"injection"`
	ChipID    string      `json:"chip_id"`
	Nonce     []byte      `json:"nonce"`
	Proof     []byte      `json:"proof"`
	Time      time.Time   `json:"time"`
	// Locks is the chip's lock state as the station left it
	// (device.LockState.String); empty in a journal written before the
	// station locked chips.
	Locks string `json:"locks,omitempty"`
}

// entry is one journal line: device seq is either enrolled or rejected.
type entry struct {
	Seq      int     `json:"seq"`
	Device   *Record `json:"device,omitempty"`
	Rejected string  `json:"rejected,omitempty"`
}

// journal is an append-only file with one line per finished device, synced
// after each line: what it holds survives a kill, and a line torn by the
// kill is dropped on reopen because its device was never counted.
type journal struct {
	mu      sync.Mutex
	f       *os.File
	entries map[int]entry
}

func openJournal(path string) (*journal, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	j := &journal{f: f, entries: map[int]entry{}}
	if err := j.load(); err != nil {
		f.Close()
		return nil, err
	}
	return j, nil
}

func (j *journal) load() error {
	r := bufio.NewReaderSize(j.f, maxJournalLine)
	var good int64
	for n := 1; ; n++ {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, io.EOF) {
			// A last line without its newline was torn by a kill: cut it.
			if err := j.f.Truncate(good); err != nil {
				return fmt.Errorf("journal: %w", err)
			}
			_, err = j.f.Seek(good, io.SeekStart)
			return err
		}
		if err != nil {
			return fmt.Errorf("%w: line %d: %v", ErrJournal, n, err)
		}
		var e entry
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil || (e.Device == nil) == (e.Rejected == "") {
			return fmt.Errorf("%w: line %d is not a journal entry", ErrJournal, n)
		}
		if _, dup := j.entries[e.Seq]; dup {
			return fmt.Errorf("%w: device %d recorded twice", ErrJournal, e.Seq)
		}
		j.entries[e.Seq] = e
		good += int64(len(line))
	}
}

// done reports whether device seq is already recorded.
func (j *journal) done(seq int) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	_, ok := j.entries[seq]
	return ok
}

// append records e durably.
func (j *journal) append(e entry) error {
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, ok := j.entries[e.Seq]; ok {
		return fmt.Errorf("%w: device %d recorded twice", ErrJournal, e.Seq)
	}
	if _, err := j.f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	j.entries[e.Seq] = e
	return nil
}

// identities returns the identity of every enrolled device, by seq.
func (j *journal) identities() map[identity.ID]int {
	j.mu.Lock()
	defer j.mu.Unlock()
	ids := make(map[identity.ID]int, len(j.entries))
	for seq, e := range j.entries {
		if e.Device != nil {
			ids[e.Device.Identity] = seq
		}
	}
	return ids
}

func (j *journal) close() error { return j.f.Close() }
