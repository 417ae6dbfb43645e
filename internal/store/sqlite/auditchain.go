package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/store"
)

// The audit chain (store.AuditChain). SQLite's single writer hands out
// audit seq numbers in commit order, so the chain's order is seq order
// and the sealer continues after the head's event; the writer connection
// also makes the sealer the only one.

var _ store.AuditChain = (*Store)(nil)

type execQueryer interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	QueryRowContext(context.Context, string, ...any) *sql.Row
}

func chainHead(ctx context.Context, q execQueryer) (store.ChainLink, error) {
	var l store.ChainLink
	var hash []byte
	err := q.QueryRowContext(ctx, `SELECT pos, event_seq, hash FROM audit_chain ORDER BY pos DESC LIMIT 1`).Scan(&l.Pos, &l.EventSeq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ChainLink{}, nil
	}
	copy(l.Hash[:], hash)
	return l, err
}

// SealAudit links up to limit events after the head's, in seq order.
func (s *Store) SealAudit(ctx context.Context, limit int, seal store.SealFunc) (store.ChainLink, int, error) {
	var head store.ChainLink
	var n int
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		if head, err = chainHead(ctx, tx); err != nil {
			return err
		}
		events, err := queryAll(ctx, tx, `SELECT `+auditColumns+` FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?`,
			[]any{head.EventSeq, limit}, scanAudit)
		if err != nil {
			return err
		}
		n = len(events)
		if n == 0 {
			return nil
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO audit_chain (pos, event_seq, hash) VALUES (?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, e := range events {
			next := store.ChainLink{Pos: head.Pos + 1, EventSeq: e.Seq, Hash: seal(head.Pos+1, head.Hash, e)}
			if _, err := stmt.ExecContext(ctx, next.Pos, next.EventSeq, next.Hash[:]); err != nil {
				return err
			}
			head = next
		}
		return nil
	})
	if err != nil {
		return store.ChainLink{}, 0, fmt.Errorf("sqlite: seal audit events: %w", err)
	}
	return head, n, nil
}

// AuditChainHead returns the newest link and the oldest live position.
func (s *Store) AuditChainHead(ctx context.Context) (store.ChainLink, int64, error) {
	head, err := chainHead(ctx, s.reader)
	if err != nil {
		return store.ChainLink{}, 0, fmt.Errorf("sqlite: audit chain head: %w", err)
	}
	var first int64
	if err := s.reader.QueryRowContext(ctx, `SELECT coalesce(min(pos), 1) FROM audit_chain`).Scan(&first); err != nil {
		return store.ChainLink{}, 0, fmt.Errorf("sqlite: audit chain head: %w", err)
	}
	return head, first, nil
}

// AppendAuditCheckpoint stores c; a Seq not past the newest checkpoint is
// store.ErrConflict, one the chain lacks store.ErrNotFound.
func (s *Store) AppendAuditCheckpoint(ctx context.Context, c store.AuditCheckpoint) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var newest, have int64
		err := tx.QueryRowContext(ctx, `SELECT coalesce((SELECT max(seq) FROM audit_checkpoints), 0),
			(SELECT count(*) FROM audit_chain WHERE pos = ?)`, c.Seq).Scan(&newest, &have)
		switch {
		case err != nil:
			return err
		case c.Seq <= newest:
			return fmt.Errorf("%w: checkpoint %d is not past checkpoint %d", store.ErrConflict, c.Seq, newest)
		case have == 0:
			return fmt.Errorf("%w: chain position %d", store.ErrNotFound, c.Seq)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO audit_checkpoints (seq, head, first, time, key_id, alg, signature)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, c.Seq, c.Head[:], c.First, micros(c.Time), c.KeyID, c.Alg, c.Signature)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: append audit checkpoint: %w", err)
	}
	return nil
}

// ScanAuditCheckpoints calls fn for every checkpoint, by seq.
func (s *Store) ScanAuditCheckpoints(ctx context.Context, fn func(store.AuditCheckpoint) error) error {
	rows, err := s.reader.QueryContext(ctx, `SELECT seq, head, first, time, key_id, alg, signature FROM audit_checkpoints ORDER BY seq`)
	if err != nil {
		return fmt.Errorf("sqlite: scan audit checkpoints: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c store.AuditCheckpoint
		var head []byte
		var at int64
		if err := rows.Scan(&c.Seq, &head, &c.First, &at, &c.KeyID, &c.Alg, &c.Signature); err != nil {
			return fmt.Errorf("sqlite: scan audit checkpoints: %w", err)
		}
		copy(c.Head[:], head)
		c.Time = fromMicros(at)
		if err := fn(c); err != nil {
			return err
		}
	}
	return rows.Err()
}

// ScanAuditChain streams the links from position from on, with their
// events, then the unlinked events, all in one read transaction.
func (s *Store) ScanAuditChain(ctx context.Context, from int64, fn func(store.ChainRecord) error) error {
	tx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("sqlite: scan audit chain: %w", err)
	}
	defer tx.Rollback()
	head, err := chainHead(ctx, tx)
	if err != nil {
		return fmt.Errorf("sqlite: scan audit chain: %w", err)
	}
	const linked = `SELECT c.pos, c.event_seq, c.hash, e.seq IS NULL, coalesce(e.time, 0), coalesce(e.actor, ''), coalesce(e.action, ''),
		coalesce(e.subject, ''), coalesce(e.outcome, ''), coalesce(e.detail, ''), coalesce(e.remote_addr, '')
		FROM audit_chain c LEFT JOIN audit_events e ON e.seq = c.event_seq WHERE c.pos >= ? ORDER BY c.pos`
	err = scanRecords(ctx, tx, linked, []any{from}, fn, func(row *sql.Rows, r *store.ChainRecord) error {
		var hash []byte
		var at int64
		e := &r.Event
		err := row.Scan(&r.Link.Pos, &r.Link.EventSeq, &hash, &r.Missing, &at, &e.Actor, &e.Action, &e.Subject, &e.Outcome, &e.Detail, &e.RemoteAddr)
		copy(r.Link.Hash[:], hash)
		e.Seq, e.Time = r.Link.EventSeq, fromMicros(at)
		return err
	})
	if err != nil {
		return err
	}
	const unlinked = `SELECT ` + auditColumns + `, seq < ? FROM audit_events e
		WHERE NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.event_seq = e.seq) ORDER BY seq`
	return scanRecords(ctx, tx, unlinked, []any{head.EventSeq}, fn, func(row *sql.Rows, r *store.ChainRecord) error {
		e := &r.Event
		var at int64
		err := row.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Subject, &e.Outcome, &e.Detail, &e.RemoteAddr, &r.Early)
		e.Time = fromMicros(at)
		return err
	})
}

func scanRecords(ctx context.Context, tx *sql.Tx, q string, args []any, fn func(store.ChainRecord) error,
	scan func(*sql.Rows, *store.ChainRecord) error) error {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("sqlite: scan audit chain: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r store.ChainRecord
		if err := scan(rows, &r); err != nil {
			return fmt.Errorf("sqlite: scan audit chain: %w", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: scan audit chain: %w", err)
	}
	return nil
}

// PruneAudit deletes positions up to through (a checkpoint's seq, below
// the head), their events, and the checkpoints before through.
func (s *Store) PruneAudit(ctx context.Context, through int64) (int64, error) {
	var n int64
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := checkPrune(ctx, tx, through); err != nil {
			return err
		}
		// The permit row lets the triggers pass these deletes only.
		for _, q := range []string{`INSERT INTO audit_prune (through) VALUES (?)`,
			`DELETE FROM audit_events WHERE seq IN (SELECT event_seq FROM audit_chain WHERE pos <= ?)`} {
			if _, err := tx.ExecContext(ctx, q, through); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM audit_chain WHERE pos <= ?`, through)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM audit_checkpoints WHERE seq < ?`, through); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM audit_prune`)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: prune audit log: %w", err)
	}
	return n, nil
}

func checkPrune(ctx context.Context, tx *sql.Tx, through int64) error {
	var cps, head int64
	err := tx.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM audit_checkpoints WHERE seq = ?),
		coalesce((SELECT max(pos) FROM audit_chain), 0)`, through).Scan(&cps, &head)
	switch {
	case err != nil:
		return err
	case cps == 0:
		return fmt.Errorf("%w: no checkpoint at position %d to anchor what remains", store.ErrNotFound, through)
	case head <= through:
		return fmt.Errorf("%w: position %d is the chain's head; keep at least one entry after the anchor", store.ErrConflict, through)
	}
	return nil
}
