package postgres

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hallmark-iot/hallmark/internal/store"
)

// The audit log has no update or delete method, and a trigger in the
// schema refuses UPDATE, DELETE and TRUNCATE on its table from any client.

const auditColumns = `seq, time, actor, action, subject, outcome, detail, remote_addr`

// AppendAudit appends e and returns its sequence number. A zero Time is
// recorded as now. Numbers increase in the order appends were made; the
// log's order is commit order (see ListAudit), which is the same unless
// appends run concurrently.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEvent) (int64, error) {
	seq, err := appendAudit(ctx, s.pool, e)
	if err != nil {
		return 0, fmt.Errorf("postgres: append audit event: %w", err)
	}
	return seq, nil
}

// appendAudit inserts e with q, the pool or a transaction.
func appendAudit(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, e store.AuditEvent) (int64, error) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	const insert = `INSERT INTO audit_events (time, actor, action, subject, outcome, detail, remote_addr)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq`
	var seq int64
	err := q.QueryRow(ctx, insert, e.Time, e.Actor, e.Action, e.Subject, e.Outcome, e.Detail, e.RemoteAddr).Scan(&seq)
	return seq, err
}

// ListAudit returns the events f selects, oldest first.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
	q, args := auditQuery(f)
	list, err := queryAll(ctx, s.pool, q, args, scanAudit)
	if err != nil {
		return nil, fmt.Errorf("postgres: list audit events: %w", err)
	}
	return list, nil
}

// auditQuery lists in commit order: by transaction, then seq. Only events
// of transactions older than every running one are shown (xid below the
// snapshot's xmin): no transaction can commit an event before them any
// more, so a reader paging with AfterSeq never skips one. An event shows
// once every transaction older than its own has ended: a long manifest
// import delays newer events until it commits. AfterSeq names the last
// event read; the page continues after it in that order.
func auditQuery(f store.AuditFilter) (string, []any) {
	where, args, order := newestFirst("audit_events", f.Newest, f.AfterSeq, f.BeforeSeq)
	for _, c := range []struct{ column, value string }{
		{"actor", f.Actor}, {"action", f.Action}, {"subject", f.Subject},
	} {
		if c.value != "" {
			args = append(args, c.value)
			where = append(where, c.column+" = $"+strconv.Itoa(len(args)))
		}
	}
	args = append(args, store.PageLimit(f.Limit))
	q := `SELECT ` + auditColumns + ` FROM audit_events WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY ` + order + ` LIMIT $` + strconv.Itoa(len(args))
	return q, args
}

func scanAudit(row pgx.Row) (store.AuditEvent, error) {
	var e store.AuditEvent
	err := row.Scan(&e.Seq, &e.Time, &e.Actor, &e.Action, &e.Subject, &e.Outcome, &e.Detail, &e.RemoteAddr)
	e.Time = e.Time.UTC()
	return e, err
}

// Settle waits until every transaction running when it was called has
// ended, so that the ordered logs (audit events, device events) show
// everything committed before the call: they hide a transaction's rows
// while an older one in the cluster is still running (auditQuery). A
// caller that has just written and wants to read its own writes back
// through those logs calls it first.
func (s *Store) Settle(ctx context.Context) error {
	var horizon int64
	if err := s.pool.QueryRow(ctx, `SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint`).Scan(&horizon); err != nil {
		return fmt.Errorf("postgres: settle: %w", err)
	}
	for {
		var done bool
		if err := s.pool.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint >= $1::bigint`, horizon).Scan(&done); err != nil {
			return fmt.Errorf("postgres: settle: %w", err)
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres: settle: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// newestFirst is the keyset condition and order of an ordered log's page
// (audit events, device events; table names one). Followed in commit
// order (after a seq, as auditQuery says), or read newest first by seq
// before a seq (zero: from the newest): a page to read, not a cursor to
// follow, so commit order does not matter there. The seq argument is
// always $1.
func newestFirst(table string, newest bool, after, before int64) (where []string, args []any, order string) {
	if !newest {
		return []string{"xid < pg_snapshot_xmin(pg_current_snapshot())",
			"(xid, seq) > (coalesce((SELECT x.xid FROM " + table + " x WHERE x.seq = $1), '0'::xid8), $1)"}, []any{after}, "xid, seq"
	}
	if before <= 0 {
		before = math.MaxInt64
	}
	return []string{"seq < $1"}, []any{before}, "seq DESC"
}
