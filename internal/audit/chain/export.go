package chain

import (
	"bufio"
	"context"
	"crypto"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hallmark-iot/hallmark/internal/store"
)

// The export format (docs/evidence.md): JSON lines, one object each. The
// first is the header {"format": Format}; then every checkpoint, by Seq;
// then every link with its event, in chain order; then, in a live export,
// the events no link names yet. Hashes are lowercase hex, signatures
// base64, times RFC 3339 in UTC with microseconds.
const Format = "hallmark-audit-chain/v1"

// MaxLine bounds one line of an export read back: an event's fields are
// bounded well below it by the API.
const MaxLine = 1 << 20

// ErrFormat reports an export that does not parse.
var ErrFormat = errors.New("malformed audit export")

// Line is one line of an export; exactly one field is set.
type Line struct {
	Format     string          `json:"format,omitempty"`
	Checkpoint *LineCheckpoint `json:"checkpoint,omitempty"`
	Entry      *LineEntry      `json:"entry,omitempty"`
}

// LineCheckpoint is a store.AuditCheckpoint.
type LineCheckpoint struct {
	Seq       int64     `json:"seq"`
	Head      string    `json:"head"`
	First     int64     `json:"first"`
	Time      time.Time `json:"time"`
	KeyID     string    `json:"key_id"`
	Alg       string    `json:"alg"`
	Signature []byte    `json:"signature"`
}

// LineEntry is a store.ChainRecord: Pos zero for an unlinked event.
type LineEntry struct {
	Pos      int64      `json:"pos,omitempty"`
	Hash     string     `json:"hash,omitempty"`
	EventSeq int64      `json:"event_seq"`
	Missing  bool       `json:"missing,omitempty"`
	Early    bool       `json:"early,omitempty"`
	Event    *LineEvent `json:"event,omitempty"`
}

// LineEvent is a store.AuditEvent.
type LineEvent struct {
	Time       time.Time `json:"time"`
	Actor      string    `json:"actor"`
	Action     string    `json:"action"`
	Subject    string    `json:"subject"`
	Outcome    string    `json:"outcome"`
	Detail     string    `json:"detail"`
	RemoteAddr string    `json:"remote_addr"`
}

// Writer writes an export.
type Writer struct {
	w   *bufio.Writer
	enc *json.Encoder
}

// NewWriter writes the header to w and returns a Writer; call Flush at
// the end.
func NewWriter(w io.Writer) (*Writer, error) {
	bw := bufio.NewWriterSize(w, 1<<16)
	x := &Writer{w: bw, enc: json.NewEncoder(bw)}
	x.enc.SetEscapeHTML(false)
	return x, x.enc.Encode(Line{Format: Format})
}

// Checkpoint writes a checkpoint line.
func (x *Writer) Checkpoint(c store.AuditCheckpoint) error {
	return x.enc.Encode(Line{Checkpoint: &LineCheckpoint{Seq: c.Seq, Head: hex.EncodeToString(c.Head[:]), First: c.First,
		Time: c.Time.UTC(), KeyID: c.KeyID, Alg: c.Alg, Signature: c.Signature}})
}

// Record writes a link (or unlinked event) line.
func (x *Writer) Record(r store.ChainRecord) error {
	e := &LineEntry{Pos: r.Link.Pos, EventSeq: r.Event.Seq, Missing: r.Missing, Early: r.Early}
	if r.Link.Pos != 0 {
		e.Hash, e.EventSeq = hex.EncodeToString(r.Link.Hash[:]), r.Link.EventSeq
	}
	if !r.Missing {
		ev := r.Event
		e.Event = &LineEvent{Time: ev.Time.UTC(), Actor: ev.Actor, Action: ev.Action, Subject: ev.Subject,
			Outcome: ev.Outcome, Detail: ev.Detail, RemoteAddr: ev.RemoteAddr}
	}
	return x.enc.Encode(Line{Entry: e})
}

// Flush writes out what is buffered.
func (x *Writer) Flush() error { return x.w.Flush() }

// Reader reads an export line by line.
type Reader struct {
	sc     *bufio.Scanner
	line   int
	header bool
}

// NewReader reads an export from r.
func NewReader(r io.Reader) *Reader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLine)
	return &Reader{sc: sc}
}

// Next returns the next checkpoint or record (one of the two is non-nil),
// or io.EOF at the end.
func (r *Reader) Next() (*store.AuditCheckpoint, *store.ChainRecord, error) {
	for {
		if !r.sc.Scan() {
			if err := r.sc.Err(); err != nil {
				return nil, nil, fmt.Errorf("%w: line %d: %v", ErrFormat, r.line+1, err)
			}
			if !r.header {
				return nil, nil, fmt.Errorf("%w: no header line", ErrFormat)
			}
			return nil, nil, io.EOF
		}
		r.line++
		if strings.TrimSpace(r.sc.Text()) == "" {
			continue
		}
		c, rec, err := r.parse(r.sc.Bytes())
		if err != nil {
			return nil, nil, fmt.Errorf("%w: line %d: %v", ErrFormat, r.line, err)
		}
		if c == nil && rec == nil {
			continue // the header
		}
		return c, rec, nil
	}
}

func (r *Reader) parse(b []byte) (*store.AuditCheckpoint, *store.ChainRecord, error) {
	var l Line
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return nil, nil, err
	}
	if dec.More() {
		return nil, nil, errors.New("trailing data")
	}
	set := 0
	for _, ok := range []bool{l.Format != "", l.Checkpoint != nil, l.Entry != nil} {
		if ok {
			set++
		}
	}
	switch {
	case set != 1:
		return nil, nil, errors.New("want exactly one of format, checkpoint, entry")
	case l.Format != "":
		if r.header || l.Format != Format {
			return nil, nil, fmt.Errorf("unexpected header %q", l.Format)
		}
		r.header = true
		return nil, nil, nil
	case !r.header:
		return nil, nil, errors.New("the header line must come first")
	case l.Checkpoint != nil:
		c, err := l.Checkpoint.decode()
		return c, nil, err
	}
	rec, err := l.Entry.decode()
	return nil, rec, err
}

func (c *LineCheckpoint) decode() (*store.AuditCheckpoint, error) {
	head, err := decodeHash(c.Head)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %d: head: %w", c.Seq, err)
	}
	return &store.AuditCheckpoint{Seq: c.Seq, Head: head, First: c.First, Time: c.Time.UTC(), KeyID: c.KeyID, Alg: c.Alg, Signature: c.Signature}, nil
}

func (e *LineEntry) decode() (*store.ChainRecord, error) {
	rec := &store.ChainRecord{Missing: e.Missing, Early: e.Early}
	switch {
	case e.Pos < 0:
		return nil, errors.New("negative position")
	case e.Missing == (e.Event != nil):
		return nil, errors.New("an entry has an event unless it is missing")
	case e.Pos == 0 && (e.Hash != "" || e.Missing):
		return nil, errors.New("an unlinked event has no hash and is not missing")
	case e.Pos != 0 && e.Early:
		return nil, errors.New("a linked event is not early")
	}
	if e.Pos != 0 {
		h, err := decodeHash(e.Hash)
		if err != nil {
			return nil, fmt.Errorf("entry %d: hash: %w", e.Pos, err)
		}
		rec.Link = store.ChainLink{Pos: e.Pos, EventSeq: e.EventSeq, Hash: h}
	}
	if ev := e.Event; ev != nil {
		rec.Event = store.AuditEvent{Seq: e.EventSeq, Time: ev.Time.UTC(), Actor: ev.Actor, Action: ev.Action, Subject: ev.Subject,
			Outcome: ev.Outcome, Detail: ev.Detail, RemoteAddr: ev.RemoteAddr}
	}
	return rec, nil
}

func decodeHash(s string) ([32]byte, error) {
	var h [32]byte
	if len(s) != 64 {
		return h, errors.New("want 64 hex digits")
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, err
	}
	if hex.EncodeToString(h[:]) != s {
		return h, errors.New("want lowercase hex")
	}
	return h, nil
}

// errStop ends a scan early without an error.
var errStop = errors.New("stop")

// Export writes the log in src to w: every checkpoint and link, and the
// unlinked events, or, with through > 0, an archive of the positions up to
// through and the checkpoints that sign them.
func Export(ctx context.Context, src store.AuditChain, w io.Writer, through int64) error {
	x, err := NewWriter(w)
	if err != nil {
		return err
	}
	err = src.ScanAuditCheckpoints(ctx, func(c store.AuditCheckpoint) error {
		if through > 0 && c.Seq > through {
			return errStop
		}
		return x.Checkpoint(c)
	})
	if err != nil && !errors.Is(err, errStop) {
		return fmt.Errorf("export audit checkpoints: %w", err)
	}
	err = src.ScanAuditChain(ctx, 0, func(r store.ChainRecord) error {
		if through > 0 && (r.Link.Pos == 0 || r.Link.Pos > through) {
			return errStop
		}
		return x.Record(r)
	})
	if err != nil && !errors.Is(err, errStop) {
		return fmt.Errorf("export audit chain: %w", err)
	}
	return x.Flush()
}

// VerifyStore verifies the whole log in src against pub, the audit key,
// and the witnessed checkpoints (Verifier.Witness).
func VerifyStore(ctx context.Context, src store.AuditChain, pub crypto.PublicKey, witnesses ...store.AuditCheckpoint) (Report, error) {
	v := NewVerifier(pub)
	if err := src.ScanAuditCheckpoints(ctx, v.Checkpoint); err != nil {
		return Report{}, verifyErr(err)
	}
	for _, w := range witnesses {
		if err := v.Witness(w); err != nil {
			return Report{}, err
		}
	}
	if err := src.ScanAuditChain(ctx, 0, v.Record); err != nil {
		return Report{}, verifyErr(err)
	}
	return v.Finish()
}

func verifyErr(err error) error {
	if errors.Is(err, ErrTampered) {
		return err
	}
	return fmt.Errorf("verify audit chain: %w", err)
}

// ReadCheckpoints returns the checkpoints of an export, for use as
// witnesses; it stops at the first entry.
func ReadCheckpoints(r io.Reader) ([]store.AuditCheckpoint, error) {
	rd := NewReader(r)
	var out []store.AuditCheckpoint
	for {
		c, _, err := rd.Next()
		if errors.Is(err, io.EOF) || (err == nil && c == nil) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, *c)
	}
}

// VerifyExport verifies an export read from r against pub and the
// witnessed checkpoints (Verifier.Witness).
func VerifyExport(r io.Reader, pub crypto.PublicKey, witnesses ...store.AuditCheckpoint) (Report, error) {
	v := NewVerifier(pub)
	rd := NewReader(r)
	records := false
	for {
		c, rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			if !records {
				for _, w := range witnesses {
					if err := v.Witness(w); err != nil {
						return Report{}, err
					}
				}
			}
			return v.Finish()
		}
		if err != nil {
			return Report{}, err
		}
		if c != nil {
			if records {
				return Report{}, fmt.Errorf("%w: line %d: a checkpoint after the entries", ErrFormat, rd.line)
			}
			err = v.Checkpoint(*c)
		} else {
			if !records {
				for _, w := range witnesses {
					if err := v.Witness(w); err != nil {
						return Report{}, err
					}
				}
			}
			records = true
			err = v.Record(*rec)
		}
		if err != nil {
			return Report{}, err
		}
	}
}
