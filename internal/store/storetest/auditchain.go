package storetest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/audit/chain"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// The audit chain's contract (store.AuditChain), checked through the
// chain package's sealer and verifier, and the tamper suite that each
// backend runs with its own SQL (RunAuditTamper).

var (
	auditKeyOnce sync.Once
	auditKey     crypto.Signer
)

// testAuditKey is one P-256 key for the whole test binary.
func testAuditKey(t testing.TB) crypto.Signer {
	auditKeyOnce.Do(func() {
		k, err := sigalg.Lookup(string(sigalg.ECDSAP256))
		if err != nil {
			panic(err)
		}
		if auditKey, err = k.GenerateKey(rand.Reader); err != nil {
			panic(err)
		}
	})
	return auditKey
}

func chainOf(t testing.TB, s store.Store) store.AuditChain {
	t.Helper()
	c, ok := s.(store.AuditChain)
	if !ok {
		t.Fatalf("%T does not implement store.AuditChain", s)
	}
	return c
}

// chainLog is the standard log of these tests: positions 1 to 25,
// checkpoints signed at 10 and 20, positions 21 to 25 linked but not
// signed, and two events not linked yet.
type chainLog struct {
	c      store.AuditChain
	sealer *chain.Sealer
	seqs   map[int64]int64 // position → event seq
}

func appendEvents(t testing.TB, ctx context.Context, s store.Store, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		_, err := s.AppendAudit(ctx, store.AuditEvent{Time: at(time.Duration(i) * time.Second), Actor: "token:adm",
			Action: "device.revoke", Subject: fmt.Sprintf("device:%04d", i), Outcome: "ok", Detail: "reason=test", RemoteAddr: "192.0.2.1"})
		must(t, err)
	}
}

func buildChainLog(t testing.TB, ctx context.Context, s store.Store, settle func()) *chainLog {
	t.Helper()
	l := &chainLog{c: chainOf(t, s)}
	var err error
	l.sealer, err = chain.NewSealer(chain.SealerConfig{Chain: l.c, Key: testAuditKey(t), Now: func() time.Time { return at(time.Hour) },
		CheckpointEvery: 1000, CheckpointInterval: 1000 * time.Hour})
	must(t, err)
	for _, step := range []struct {
		n     int
		force bool
	}{{10, true}, {10, true}, {5, false}} {
		appendEvents(t, ctx, s, 0, step.n)
		settle()
		_, err := l.sealer.Step(ctx, step.force)
		must(t, err)
	}
	appendEvents(t, ctx, s, 100, 2)
	l.seqs = map[int64]int64{}
	must(t, l.c.ScanAuditChain(ctx, 0, func(r store.ChainRecord) error {
		if r.Link.Pos != 0 {
			l.seqs[r.Link.Pos] = r.Link.EventSeq
		}
		return nil
	}))
	if len(l.seqs) != 25 {
		t.Fatalf("chain holds %d positions, want 25", len(l.seqs))
	}
	return l
}

func (f *fixture) chainLog(t *testing.T) *chainLog {
	return buildChainLog(t, f.ctx, f.s, func() { f.settle(t) })
}

func wantReport(t testing.TB, got, want chain.Report) {
	t.Helper()
	if got != want {
		t.Fatalf("report %+v, want %+v", got, want)
	}
}

func testAuditChain(t *testing.T, f *fixture) {
	l := f.chainLog(t)
	pub := testAuditKey(t).Public()
	want := chain.Report{Entries: 25, First: 1, Head: 25, Checkpoints: 2, LastSigned: 20, Unsigned: 5, Unlinked: 2}
	got, err := chain.VerifyStore(f.ctx, l.c, pub)
	must(t, err)
	wantReport(t, got, want)

	var buf bytes.Buffer
	must(t, chain.Export(f.ctx, l.c, &buf, 0))
	got, err = chain.VerifyExport(&buf, pub)
	must(t, err)
	wantReport(t, got, want)

	// A checkpoint never goes back or names a position the chain lacks.
	head, first, err := l.c.AuditChainHead(f.ctx)
	must(t, err)
	if head.Pos != 25 || first != 1 {
		t.Fatalf("head %d, first %d; want 25, 1", head.Pos, first)
	}
	old, err := chain.SignCheckpoint(testAuditKey(t), store.ChainLink{Pos: 20, Hash: head.Hash}, 1, at(0))
	must(t, err)
	wantErr(t, "checkpoint again", l.c.AppendAuditCheckpoint(f.ctx, old), store.ErrConflict)
	beyond, err := chain.SignCheckpoint(testAuditKey(t), store.ChainLink{Pos: 99}, 1, at(0))
	must(t, err)
	wantErr(t, "checkpoint beyond the head", l.c.AppendAuditCheckpoint(f.ctx, beyond), store.ErrNotFound)

	// A proof from position 13 to checkpoint 20, and none yet for 23.
	p, err := chain.BuildProof(f.ctx, l.c, 13)
	must(t, err)
	must(t, p.Verify(pub))
	if p.Checkpoint.Seq != 20 || p.Event.Seq != l.seqs[13] || len(p.Following) != 7 {
		t.Fatalf("proof: checkpoint %d, event %d, %d hashes", p.Checkpoint.Seq, p.Event.Seq, len(p.Following))
	}
	p.Event.Detail += "!"
	if err := p.Verify(pub); !errors.Is(err, chain.ErrTampered) {
		t.Fatalf("an edited proof verified: %v", err)
	}
	if _, err := chain.BuildProof(f.ctx, l.c, 23); !errors.Is(err, chain.ErrNoProof) {
		t.Fatalf("proof of an unsigned position: %v", err)
	}

	// Sealing again links the two newcomers, and a forced step signs them.
	f.settle(t)
	head, err = l.sealer.Step(f.ctx, true)
	must(t, err)
	got, err = chain.VerifyStore(f.ctx, l.c, pub)
	must(t, err)
	wantReport(t, got, chain.Report{Entries: 27, First: 1, Head: 27, Checkpoints: 3, LastSigned: 27})
	if head.Pos != 27 {
		t.Fatalf("head %d after sealing, want 27", head.Pos)
	}
}

func testAuditChainPrune(t *testing.T, f *fixture) {
	l := f.chainLog(t)
	pub := testAuditKey(t).Public()
	var archive bytes.Buffer
	must(t, chain.Export(f.ctx, l.c, &archive, 10))
	_, err := l.c.PruneAudit(f.ctx, 15)
	wantErr(t, "prune at an unsigned position", err, store.ErrNotFound)
	n, err := l.c.PruneAudit(f.ctx, 10)
	must(t, err)
	if n != 10 {
		t.Fatalf("pruned %d positions, want 10", n)
	}
	got, err := chain.VerifyExport(bytes.NewReader(archive.Bytes()), pub)
	must(t, err)
	wantReport(t, got, chain.Report{Entries: 10, First: 1, Head: 10, Checkpoints: 1, LastSigned: 10})
	got, err = chain.VerifyStore(f.ctx, l.c, pub)
	must(t, err)
	wantReport(t, got, chain.Report{Entries: 15, First: 11, Head: 25, Checkpoints: 2, LastSigned: 20, Unsigned: 5, Unlinked: 2})

	// The next checkpoint records where the live log starts now.
	f.settle(t)
	_, err = l.sealer.Step(f.ctx, true)
	must(t, err)
	var last store.AuditCheckpoint
	must(t, l.c.ScanAuditCheckpoints(f.ctx, func(c store.AuditCheckpoint) error { last = c; return nil }))
	if last.Seq != 27 || last.First != 11 {
		t.Fatalf("checkpoint after the prune: seq %d, first %d; want 27, 11", last.Seq, last.First)
	}
	_, err = l.c.PruneAudit(f.ctx, 27)
	wantErr(t, "prune the head", err, store.ErrConflict)
	// What the log still lists is what remains.
	f.settle(t)
	events, err := f.s.ListAudit(f.ctx, store.AuditFilter{Limit: 1000})
	must(t, err)
	if len(events) != 17 {
		t.Fatalf("ListAudit after the prune: %d events, want 17", len(events))
	}
}

// testAuditChainConcurrently appends from several goroutines while two
// sealers (two replicas) run: every event ends up linked exactly once.
func testAuditChainConcurrently(t *testing.T, f *fixture) {
	c := chainOf(t, f.s)
	var sealers [2]*chain.Sealer
	for i := range sealers {
		var err error
		sealers[i], err = chain.NewSealer(chain.SealerConfig{Chain: c, Key: testAuditKey(t), Batch: 7, CheckpointEvery: 25})
		must(t, err)
	}
	ctx, cancel := context.WithCancel(f.ctx)
	var sealing sync.WaitGroup
	errs := make(chan error, 2)
	for _, s := range sealers {
		sealing.Go(func() {
			for ctx.Err() == nil {
				if _, err := s.Step(ctx, false); err != nil && ctx.Err() == nil {
					errs <- err
					return
				}
			}
		})
	}
	var writers sync.WaitGroup
	for w := range 4 {
		writers.Go(func() { appendEvents(t, f.ctx, f.s, w*1000, 40) })
	}
	writers.Wait()
	cancel()
	sealing.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	f.settle(t)
	_, err := sealers[0].Step(f.ctx, true)
	must(t, err)
	got, err := chain.VerifyStore(f.ctx, c, testAuditKey(t).Public())
	must(t, err)
	if got.Entries != 160 || got.Unlinked != 0 || got.LastSigned != 160 {
		t.Fatalf("after concurrent appends: %+v, want 160 entries all linked and signed", got)
	}
}

// AuditTamper is an attacker with write access to a backend's database:
// each method changes it behind the store's back, with the append-only
// triggers out of the way, as such an attacker would.
type AuditTamper interface {
	// EditEvent changes the detail of the event with this seq.
	EditEvent(t testing.TB, seq int64)
	// DeleteEvent deletes the event with this seq, not its link.
	DeleteEvent(t testing.TB, seq int64)
	// DeleteLinks deletes the positions from to to and their events.
	DeleteLinks(t testing.TB, from, to int64)
	// InsertEventBefore inserts an event that sorts before the one
	// with this seq, links nothing to it, and returns its seq.
	InsertEventBefore(t testing.TB, seq int64) int64
	// SwapSeqs exchanges the seq numbers of two events.
	SwapSeqs(t testing.TB, a, b int64)
	// SetLinkHash overwrites the hash of a position.
	SetLinkHash(t testing.TB, pos int64, hash [32]byte)
	// EditCheckpoint flips a bit of a checkpoint's head.
	EditCheckpoint(t testing.TB, seq int64)
	// DeleteCheckpoint deletes a checkpoint.
	DeleteCheckpoint(t testing.TB, seq int64)
	// Reset empties the log, the chain and the checkpoints, so the next
	// case starts afresh on the same database (a new one per case would
	// cost more than the case).
	Reset(t testing.TB)
}

// RunAuditTamper tampers with the standard log in every way the chain
// must catch, each on a fresh log in the store from open, and checks that the verifier
// names the right failure and position, from the database and from an
// export.
func RunAuditTamper(t *testing.T, open func(t *testing.T) (store.Store, AuditTamper, func())) {
	s, x, settle := open(t)
	t.Cleanup(func() { s.Close() })
	for _, c := range []struct {
		name   string
		tamper func(t *testing.T, l *chainLog, x AuditTamper) chain.Failure
	}{
		{"edit", func(t *testing.T, l *chainLog, x AuditTamper) chain.Failure {
			x.EditEvent(t, l.seqs[13])
			return chain.Failure{Kind: chain.Changed, Pos: 13, EventSeq: l.seqs[13]}
		}},
		{"delete event", func(t *testing.T, l *chainLog, x AuditTamper) chain.Failure {
			x.DeleteEvent(t, l.seqs[7])
			return chain.Failure{Kind: chain.Removed, Pos: 7, EventSeq: l.seqs[7]}
		}},
		{"delete event and link", func(t *testing.T, l *chainLog, x AuditTamper) chain.Failure {
			x.DeleteLinks(t, 7, 7)
			return chain.Failure{Kind: chain.Removed, Pos: 7}
		}},
		{"delete the oldest", func(t *testing.T, l *chainLog, x AuditTamper) chain.Failure {
			x.DeleteLinks(t, 1, 5)
			return chain.Failure{Kind: chain.Removed, Pos: 1}
		}},
		{"insert", func(t *testing.T, l *chainLog, x AuditTamper) chain.Failure {
			seq := x.InsertEventBefore(t, l.seqs[12])
			return chain.Failure{Kind: chain.Inserted, EventSeq: seq}
		}},
		{"reorder", func(t *testing.T, l *chainLog, x AuditTamper) chain.Failure {
			x.SwapSeqs(t, l.seqs[15], l.seqs[16])
			return chain.Failure{Kind: chain.Reordered, Pos: 15, EventSeq: l.seqs[15]}
		}},
		{"truncate", func(t *testing.T, l *chainLog, x AuditTamper) chain.Failure {
			x.DeleteLinks(t, 18, 25)
			return chain.Failure{Kind: chain.Truncated, Pos: 18, Checkpoint: 20}
		}},
		{"rewrite the links", func(t *testing.T, l *chainLog, x AuditTamper) chain.Failure {
			x.EditEvent(t, l.seqs[13])
			var prev [32]byte
			must(t, l.c.ScanAuditChain(t.Context(), 0, func(r store.ChainRecord) error {
				if r.Link.Pos == 0 {
					return nil
				}
				h := chain.Seal(r.Link.Pos, prev, r.Event)
				if h != r.Link.Hash {
					x.SetLinkHash(t, r.Link.Pos, h)
				}
				prev = h
				return nil
			}))
			return chain.Failure{Kind: chain.Rewritten, Pos: 11, Checkpoint: 20}
		}},
		{"forge a checkpoint", func(t *testing.T, l *chainLog, x AuditTamper) chain.Failure {
			x.EditCheckpoint(t, 20)
			return chain.Failure{Kind: chain.Forged, Checkpoint: 20}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			x.Reset(t)
			l := buildChainLog(t, t.Context(), s, settle)
			want := c.tamper(t, l, x)
			pub := testAuditKey(t).Public()
			_, err := chain.VerifyStore(t.Context(), l.c, pub)
			wantFailure(t, "database", err, want)
			var buf bytes.Buffer
			must(t, chain.Export(t.Context(), l.c, &buf, 0))
			_, err = chain.VerifyExport(&buf, pub)
			wantFailure(t, "export", err, want)
		})
	}
	// Deleting the newest checkpoint with the entries it signs passes on
	// its own, and fails against a witness: an export taken before.
	t.Run("truncate with its checkpoint", func(t *testing.T) {
		x.Reset(t)
		l := buildChainLog(t, t.Context(), s, settle)
		var before bytes.Buffer
		must(t, chain.Export(t.Context(), l.c, &before, 0))
		x.DeleteLinks(t, 15, 25)
		x.DeleteCheckpoint(t, 20)
		pub := testAuditKey(t).Public()
		got, err := chain.VerifyStore(t.Context(), l.c, pub)
		must(t, err)
		wantReport(t, got, chain.Report{Entries: 14, First: 1, Head: 14, Checkpoints: 1, LastSigned: 10, Unsigned: 4, Unlinked: 2})
		witnesses, err := chain.ReadCheckpoints(&before)
		must(t, err)
		_, err = chain.VerifyStore(t.Context(), l.c, pub, witnesses...)
		wantFailure(t, "database", err, chain.Failure{Kind: chain.Truncated, Pos: 15, Checkpoint: 20})
	})
	// The documented window: positions after the last checkpoint are not
	// signed yet, so cutting them off (and their events) goes unnoticed.
	t.Run("unsigned tail", func(t *testing.T) {
		x.Reset(t)
		l := buildChainLog(t, t.Context(), s, settle)
		x.DeleteLinks(t, 21, 25)
		got, err := chain.VerifyStore(t.Context(), l.c, testAuditKey(t).Public())
		must(t, err)
		wantReport(t, got, chain.Report{Entries: 20, First: 1, Head: 20, Checkpoints: 2, LastSigned: 20, Unlinked: 2})
	})
}

func wantFailure(t *testing.T, from string, err error, want chain.Failure) {
	t.Helper()
	var f *chain.Failure
	if !errors.As(err, &f) {
		t.Fatalf("%s: verify: %v, want a %s failure", from, err, want.Kind)
	}
	if f.Kind != want.Kind || f.Pos != want.Pos || f.EventSeq != want.EventSeq || f.Checkpoint != want.Checkpoint {
		t.Fatalf("%s: %v\n got %+v\nwant %+v", from, err, *f, want)
	}
	if !errors.Is(err, chain.ErrTampered) {
		t.Fatalf("%s: %v does not wrap ErrTampered", from, err)
	}
}

// BenchmarkAuditChain measures audit appends from several goroutines,
// without the chain ("plain", the log as it was) and with a sealer
// linking and signing in the background as in serve ("chained"). It
// reports appends/s and, for the chain, sealed/s over the same wall time
// including the last seal, after which every event is linked.
func BenchmarkAuditChain(b *testing.B, open func(b *testing.B) store.Store, settle func(store.Store)) {
	b.Run("plain", func(b *testing.B) { benchAppends(b, open, settle, false) })
	b.Run("chained", func(b *testing.B) { benchAppends(b, open, settle, true) })
}

func benchAppends(b *testing.B, open func(b *testing.B) store.Store, settle func(store.Store), chained bool) {
	s := open(b)
	b.Cleanup(func() { s.Close() })
	c := chainOf(b, s)
	sealer, err := chain.NewSealer(chain.SealerConfig{Chain: c, Key: testAuditKey(b), Poll: 50 * time.Millisecond})
	must(b, err)
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan error, 1)
	if chained {
		go func() { done <- sealer.Run(ctx) }()
	} else {
		done <- nil
	}
	event := store.AuditEvent{Actor: "device:ab12", Action: "device.onboard", Subject: "device:ab12", Outcome: "ok",
		Detail: "serial=0123456789abcdef", RemoteAddr: "192.0.2.1"}
	b.SetParallelism(4)
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.AppendAudit(b.Context(), event); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	appends := time.Since(start)
	b.ReportMetric(float64(b.N)/appends.Seconds(), "appends/s")
	cancel()
	must(b, <-done)
	if !chained {
		return
	}
	settle(s) // PostgreSQL: a transaction elsewhere in the cluster may hold back the last events
	_, err = sealer.Step(b.Context(), true)
	must(b, err)
	sealedIn := time.Since(start)
	rep, err := chain.VerifyStore(b.Context(), c, testAuditKey(b).Public())
	must(b, err)
	if rep.Unlinked != 0 || rep.Entries != int64(b.N) {
		b.Fatalf("after the run: %+v, want %d entries all linked", rep, b.N)
	}
	b.ReportMetric(float64(rep.Entries)/sealedIn.Seconds(), "sealed/s")
}
