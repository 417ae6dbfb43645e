package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/hallmark-iot/hallmark/internal/store"
)

// The audit chain (store.AuditChain). The chain's order is the log's
// order, (xid, seq) (auditQuery): the sealer takes only events of
// transactions older than every running one, so an event whose
// transaction drew a smaller seq but commits later is linked in its place,
// never skipped. One sealer runs at a time in the whole cluster: every
// replica's sealer takes the same advisory lock, so replicas extend one
// chain.

var _ store.AuditChain = (*Store)(nil)

// auditChainLock is the pg_advisory_xact_lock key of the sealer.
const auditChainLock int64 = 0x686d617564636861 // "hmaudcha"

type chainHeadRow struct {
	store.ChainLink
	xid string // the head event's xid8, as text
}

func pgChainHead(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (chainHeadRow, error) {
	var h chainHeadRow
	var hash []byte
	err := q.QueryRow(ctx, `SELECT pos, event_seq, event_xid::text, hash FROM audit_chain ORDER BY pos DESC LIMIT 1`).
		Scan(&h.Pos, &h.EventSeq, &h.xid, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return chainHeadRow{xid: "0"}, nil
	}
	if err != nil {
		return h, err
	}
	return h, fixed(h.Hash[:], hash, "audit chain hash")
}

// SealAudit links up to limit settled events after the head's, in (xid,
// seq) order, under the sealer's advisory lock. An event linked already
// is never linked again: once, in CI under load, a step found one past
// the head's (xid, seq) and failed on audit_chain's unique event_seq,
// which would stop the sealer for good; the cause is not understood, so
// the read skips such an event (one index probe) rather than wedge.
func (s *Store) SealAudit(ctx context.Context, limit int, seal store.SealFunc) (store.ChainLink, int, error) {
	var head chainHeadRow
	var n int
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, auditChainLock); err != nil {
			return err
		}
		var err error
		if head, err = pgChainHead(ctx, tx); err != nil {
			return err
		}
		type ev struct {
			store.AuditEvent
			xid string
		}
		events, err := queryAll(ctx, tx, `SELECT `+auditColumns+`, xid::text FROM audit_events
			WHERE xid < pg_snapshot_xmin(pg_current_snapshot()) AND (xid, seq) > ($1::text::xid8, $2)
			AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.event_seq = audit_events.seq)
			ORDER BY xid, seq LIMIT $3`, []any{head.xid, head.EventSeq, limit}, func(row pgx.Row) (ev, error) {
			var e ev
			err := row.Scan(&e.Seq, &e.Time, &e.Actor, &e.Action, &e.Subject, &e.Outcome, &e.Detail, &e.RemoteAddr, &e.xid)
			e.Time = e.Time.UTC()
			return e, err
		})
		if err != nil {
			return err
		}
		n = len(events)
		if n == 0 {
			return nil
		}
		pos, seqs, xids, hashes := make([]int64, n), make([]int64, n), make([]string, n), make([][]byte, n)
		for i, e := range events {
			h := seal(head.Pos+1, head.Hash, e.AuditEvent)
			head = chainHeadRow{ChainLink: store.ChainLink{Pos: head.Pos + 1, EventSeq: e.Seq, Hash: h}, xid: e.xid}
			pos[i], seqs[i], xids[i], hashes[i] = head.Pos, e.Seq, e.xid, h[:]
		}
		_, err = tx.Exec(ctx, `INSERT INTO audit_chain (pos, event_seq, event_xid, hash)
			SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[]::xid8[], $4::bytea[])`, pos, seqs, xids, hashes)
		return err
	})
	if err != nil {
		return store.ChainLink{}, 0, fmt.Errorf("postgres: seal audit events: %w", err)
	}
	return head.ChainLink, n, nil
}

// AuditChainHead returns the newest link and the oldest live position.
func (s *Store) AuditChainHead(ctx context.Context) (store.ChainLink, int64, error) {
	head, err := pgChainHead(ctx, s.pool)
	if err != nil {
		return store.ChainLink{}, 0, fmt.Errorf("postgres: audit chain head: %w", err)
	}
	var first int64
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(min(pos), 1) FROM audit_chain`).Scan(&first); err != nil {
		return store.ChainLink{}, 0, fmt.Errorf("postgres: audit chain head: %w", err)
	}
	return head.ChainLink, first, nil
}

// AppendAuditCheckpoint stores c; a Seq not past the newest checkpoint is
// store.ErrConflict, one the chain lacks store.ErrNotFound.
func (s *Store) AppendAuditCheckpoint(ctx context.Context, c store.AuditCheckpoint) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// The sealer's lock orders checkpoints of several replicas.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, auditChainLock); err != nil {
			return err
		}
		var newest, have int64
		err := tx.QueryRow(ctx, `SELECT coalesce((SELECT max(seq) FROM audit_checkpoints), 0),
			(SELECT count(*) FROM audit_chain WHERE pos = $1)`, c.Seq).Scan(&newest, &have)
		switch {
		case err != nil:
			return err
		case c.Seq <= newest:
			return fmt.Errorf("%w: checkpoint %d is not past checkpoint %d", store.ErrConflict, c.Seq, newest)
		case have == 0:
			return fmt.Errorf("%w: chain position %d", store.ErrNotFound, c.Seq)
		}
		_, err = tx.Exec(ctx, `INSERT INTO audit_checkpoints (seq, head, first, time, key_id, alg, signature)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, c.Seq, c.Head[:], c.First, c.Time, c.KeyID, c.Alg, c.Signature)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: append audit checkpoint: %w", err)
	}
	return nil
}

// ScanAuditCheckpoints calls fn for every checkpoint, by seq.
func (s *Store) ScanAuditCheckpoints(ctx context.Context, fn func(store.AuditCheckpoint) error) error {
	rows, err := s.pool.Query(ctx, `SELECT seq, head, first, time, key_id, alg, signature FROM audit_checkpoints ORDER BY seq`)
	if err != nil {
		return fmt.Errorf("postgres: scan audit checkpoints: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c store.AuditCheckpoint
		var head []byte
		if err := rows.Scan(&c.Seq, &head, &c.First, &c.Time, &c.KeyID, &c.Alg, &c.Signature); err != nil {
			return fmt.Errorf("postgres: scan audit checkpoints: %w", err)
		}
		if err := fixed(c.Head[:], head, "audit checkpoint head"); err != nil {
			return fmt.Errorf("postgres: scan audit checkpoints: %w", err)
		}
		c.Time = c.Time.UTC()
		if err := fn(c); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres: scan audit checkpoints: %w", err)
	}
	return nil
}

// ScanAuditChain streams the links from position from on, with their
// events, then the unlinked events, from one snapshot.
func (s *Store) ScanAuditChain(ctx context.Context, from int64, fn func(store.ChainRecord) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("postgres: scan audit chain: %w", err)
	}
	defer tx.Rollback(ctx)
	head, err := pgChainHead(ctx, tx)
	if err != nil {
		return fmt.Errorf("postgres: scan audit chain: %w", err)
	}
	const linked = `SELECT c.pos, c.event_seq, c.hash, e.seq IS NULL, coalesce(e.time, 'epoch'), coalesce(e.actor, ''),
		coalesce(e.action, ''), coalesce(e.subject, ''), coalesce(e.outcome, ''), coalesce(e.detail, ''), coalesce(e.remote_addr, '')
		FROM audit_chain c LEFT JOIN audit_events e ON e.seq = c.event_seq WHERE c.pos >= $1 ORDER BY c.pos`
	err = pgScanRecords(ctx, tx, linked, []any{from}, fn, func(row pgx.Rows, r *store.ChainRecord) error {
		var hash []byte
		e := &r.Event
		if err := row.Scan(&r.Link.Pos, &r.Link.EventSeq, &hash, &r.Missing, &e.Time, &e.Actor, &e.Action, &e.Subject,
			&e.Outcome, &e.Detail, &e.RemoteAddr); err != nil {
			return err
		}
		e.Seq, e.Time = r.Link.EventSeq, e.Time.UTC()
		return fixed(r.Link.Hash[:], hash, "audit chain hash")
	})
	if err != nil {
		return err
	}
	const unlinked = `SELECT ` + auditColumns + `, (xid, seq) < ($1::text::xid8, $2) FROM audit_events e
		WHERE NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.event_seq = e.seq) ORDER BY xid, seq`
	return pgScanRecords(ctx, tx, unlinked, []any{head.xid, head.EventSeq}, fn, func(row pgx.Rows, r *store.ChainRecord) error {
		e := &r.Event
		err := row.Scan(&e.Seq, &e.Time, &e.Actor, &e.Action, &e.Subject, &e.Outcome, &e.Detail, &e.RemoteAddr, &r.Early)
		e.Time = e.Time.UTC()
		return err
	})
}

func pgScanRecords(ctx context.Context, tx pgx.Tx, q string, args []any, fn func(store.ChainRecord) error,
	scan func(pgx.Rows, *store.ChainRecord) error) error {
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("postgres: scan audit chain: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r store.ChainRecord
		if err := scan(rows, &r); err != nil {
			return fmt.Errorf("postgres: scan audit chain: %w", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres: scan audit chain: %w", err)
	}
	return nil
}

// PruneAudit deletes positions up to through (a checkpoint's seq, below
// the head), their events, and the checkpoints before through.
func (s *Store) PruneAudit(ctx context.Context, through int64) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, auditChainLock); err != nil {
			return err
		}
		var cps, head int64
		err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM audit_checkpoints WHERE seq = $1),
			coalesce((SELECT max(pos) FROM audit_chain), 0)`, through).Scan(&cps, &head)
		switch {
		case err != nil:
			return err
		case cps == 0:
			return fmt.Errorf("%w: no checkpoint at position %d to anchor what remains", store.ErrNotFound, through)
		case head <= through:
			return fmt.Errorf("%w: position %d is the chain's head; keep at least one entry after the anchor", store.ErrConflict, through)
		}
		// The setting lets the triggers pass this transaction's deletes.
		if _, err := tx.Exec(ctx, `SELECT set_config('hallmark.audit_prune', 'on', true)`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM audit_events WHERE seq IN (SELECT event_seq FROM audit_chain WHERE pos <= $1)`, through); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM audit_chain WHERE pos <= $1`, through)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		if _, err := tx.Exec(ctx, `DELETE FROM audit_checkpoints WHERE seq < $1`, through); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `SELECT set_config('hallmark.audit_prune', '', true)`)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: prune audit log: %w", err)
	}
	return n, nil
}
