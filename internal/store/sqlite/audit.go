package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/hallmark-iot/hallmark/internal/store"
)

// The audit log has no update or delete method, and triggers in the schema
// refuse UPDATE and DELETE on its table from any client.

const auditColumns = `seq, time, actor, action, subject, outcome, detail, remote_addr`

const insertAuditEvent = `INSERT INTO audit_events (time, actor, action, subject, outcome, detail, remote_addr)
	VALUES (?, ?, ?, ?, ?, ?, ?)`

// AppendAudit appends e and returns its sequence number, which is larger
// than every earlier one. A zero Time is recorded as now.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEvent) (int64, error) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	var seq int64
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		seq, err = appendAudit(ctx, tx, e)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: append audit event: %w", err)
	}
	return seq, nil
}

// appendAudit inserts e with db, a connection or a transaction.
func appendAudit(ctx context.Context, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, e store.AuditEvent) (int64, error) {
	res, err := db.ExecContext(ctx, insertAuditEvent, micros(e.Time), e.Actor, e.Action, e.Subject, e.Outcome, e.Detail, e.RemoteAddr)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// ListAudit returns the events f selects, oldest first.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
	q, args := auditQuery(f)
	list, err := queryAll(ctx, s.reader, q, args, scanAudit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list audit events: %w", err)
	}
	return list, nil
}

func auditQuery(f store.AuditFilter) (string, []any) {
	where, args, order := newestFirst(f.Newest, f.AfterSeq, f.BeforeSeq)
	for _, c := range []struct{ column, value string }{
		{"actor", f.Actor}, {"action", f.Action}, {"subject", f.Subject},
	} {
		if c.value != "" {
			where = append(where, c.column+" = ?")
			args = append(args, c.value)
		}
	}
	q := `SELECT ` + auditColumns + ` FROM audit_events WHERE ` + strings.Join(where, " AND ") + ` ORDER BY ` + order + ` LIMIT ?`
	return q, append(args, store.PageLimit(f.Limit))
}

func scanAudit(row scanner) (store.AuditEvent, error) {
	var e store.AuditEvent
	var at int64
	err := row.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Subject, &e.Outcome, &e.Detail, &e.RemoteAddr)
	e.Time = fromMicros(at)
	return e, err
}

// newestFirst is the keyset condition and order of an ordered log's page
// (audit events, device events): after a seq in seq order, or newest
// first before a seq (zero: from the newest).
func newestFirst(newest bool, after, before int64) (where []string, args []any, order string) {
	if !newest {
		return []string{"seq > ?"}, []any{after}, "seq"
	}
	if before > 0 {
		return []string{"seq < ?"}, []any{before}, "seq DESC"
	}
	return []string{"1 = 1"}, nil, "seq DESC"
}
