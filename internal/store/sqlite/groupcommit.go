package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Group commit. SQLite has one writer; a commit writes every page the
// transaction dirtied to the WAL (8 KiB each: an onboarding touches about
// eight) with a system call per page. Small writes that arrive while
// another is running therefore wait in a queue, and the committer runs the
// whole queue as one transaction, each write in its own savepoint: a write
// that fails rolls back to its savepoint alone, and the others commit
// together, sharing the pages they dirty and the commit's cost. Alone, a
// write runs as its own transaction, as before. docs/performance.md has
// the figures.

// maxGroup bounds one group: a failing commit fails all of it.
const maxGroup = 64

// errClosed reports a write after Close.
var errClosed = errors.New("sqlite: store closed")

// writeRequest is one queued write.
type writeRequest struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx *sql.Tx) error
	done chan error
}

// startCommitter starts the goroutine that runs queued writes.
func (s *Store) startCommitter() {
	s.writes = make(chan *writeRequest)
	s.closing = make(chan struct{})
	s.committerDone = make(chan struct{})
	go s.commitLoop()
}

// write runs fn in a write transaction, perhaps shared with other writes
// (see above); fn must leave the transaction usable when it fails (a
// failed statement does). Once queued, the write runs even if ctx ends
// meanwhile: statements get ctx without its cancellation, so one caller
// going away cannot abort the others' transaction.
func (s *Store) write(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	req := &writeRequest{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case s.writes <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closing:
		return errClosed
	}
	return <-req.done
}

func (s *Store) commitLoop() {
	defer close(s.committerDone)
	for {
		var first *writeRequest
		select {
		case first = <-s.writes:
		case <-s.closing:
			return
		}
		group := []*writeRequest{first}
	drain:
		for len(group) < maxGroup {
			select {
			case r := <-s.writes:
				group = append(group, r)
			default:
				break drain
			}
		}
		s.commitGroup(group)
	}
}

// commitGroup runs a group in one transaction and tells each write its
// outcome.
func (s *Store) commitGroup(group []*writeRequest) {
	errs := make([]error, len(group))
	ctx := context.Background()
	if len(group) == 1 {
		r := group[0]
		errs[0] = s.inTx(ctx, func(tx *sql.Tx) error { return r.fn(context.WithoutCancel(r.ctx), tx) })
		r.done <- errs[0]
		return
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for i, r := range group {
			if err := r.ctx.Err(); err != nil {
				errs[i] = err
				continue
			}
			if _, err := tx.ExecContext(ctx, "SAVEPOINT w"); err != nil {
				return fmt.Errorf("savepoint: %w", err)
			}
			if errs[i] = r.fn(context.WithoutCancel(r.ctx), tx); errs[i] != nil {
				if _, err := tx.ExecContext(ctx, "ROLLBACK TO w"); err != nil {
					return fmt.Errorf("rollback to savepoint: %w", err)
				}
			}
			if _, err := tx.ExecContext(ctx, "RELEASE w"); err != nil {
				return fmt.Errorf("release savepoint: %w", err)
			}
		}
		return nil
	})
	for i, r := range group {
		if err != nil && errs[i] == nil {
			errs[i] = err // rolled back with the group
		}
		r.done <- errs[i]
	}
}

// stopCommitter ends the committer once the writes it holds are done.
func (s *Store) stopCommitter() {
	if s.closing == nil {
		return
	}
	close(s.closing)
	<-s.committerDone
}
