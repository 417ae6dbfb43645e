package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

func registerJobs(connectors ...string) []store.Job {
	jobs := make([]store.Job, len(connectors))
	for i, c := range connectors {
		jobs[i] = store.Job{Kind: store.JobRegister, Connector: c}
	}
	return jobs
}

// testJobsOutbox checks jobs are enqueued with, and only with, the state
// change that causes them.
func testJobsOutbox(t *testing.T, f *fixture) {
	devices := makeDevices("outbox", 2)
	f.mustImport(t, f.batch("outbox", "m-outbox"), devices)
	d0, d1 := devices[0].Identity, devices[1].Identity
	first := newCert(d0, 1, at(2*time.Hour))
	must(t, f.s.RecordOnboarding(f.ctx, first, at(2*time.Hour), registerJobs("mosquitto", "webhook")...))

	taken := newCert(d1, 2, at(2*time.Hour))
	taken.Serial = first.Serial
	wantErr(t, "RecordOnboarding(serial taken)",
		f.s.RecordOnboarding(f.ctx, taken, at(2*time.Hour), registerJobs("webhook")...), store.ErrExists)
	// A job the schema refuses rolls the onboarding back too.
	bad := []store.Job{{Kind: "explode", Connector: "webhook"}}
	if err := f.s.RecordOnboarding(f.ctx, newCert(d1, 3, at(2*time.Hour)), at(2*time.Hour), bad...); err == nil {
		t.Fatal("RecordOnboarding with a job of unknown kind succeeded")
	}
	if d, err := f.s.GetDevice(f.ctx, d1); err != nil || d.State != store.StateRegistered {
		t.Fatalf("device after refused onboarding: %v, %v; want still registered", d.State, err)
	}
	jobs, err := f.s.ListJobs(f.ctx, store.JobFilter{Identity: d1})
	must(t, err)
	if len(jobs) != 0 {
		t.Fatalf("refused onboardings enqueued %d jobs", len(jobs))
	}

	jobs, err = f.s.ListJobs(f.ctx, store.JobFilter{Identity: d0})
	must(t, err)
	if len(jobs) != 2 || jobs[0].ID <= jobs[1].ID {
		t.Fatalf("ListJobs = %+v, want 2 jobs newest first", jobs)
	}
	for i, name := range []string{"webhook", "mosquitto"} {
		want := store.Job{
			ID: jobs[i].ID, Kind: store.JobRegister, Connector: name, Identity: d0, State: store.JobPending,
			NextRunAt: at(2 * time.Hour).UTC(), CreatedAt: at(2 * time.Hour).UTC(), UpdatedAt: at(2 * time.Hour).UTC(),
		}
		equal(t, "enqueued job", jobs[i], want)
	}

	must(t, f.s.RevokeDevice(f.ctx, d0, "stolen", at(3*time.Hour), store.Job{Kind: store.JobDeregister, Connector: "webhook"}))
	must(t, f.s.RevokeDevice(f.ctx, d0, "again", at(4*time.Hour), store.Job{Kind: store.JobDeregister, Connector: "webhook"}))
	jobs, err = f.s.ListJobs(f.ctx, store.JobFilter{Identity: d0})
	must(t, err)
	if len(jobs) != 3 || jobs[0].Kind != store.JobDeregister || !jobs[0].CreatedAt.Equal(at(3*time.Hour)) {
		t.Fatalf("after revoking twice: %+v, want one deregister job from the first revocation", jobs)
	}
	state, _ := store.CloudStateOf(jobs)
	if state != store.CloudPending {
		t.Errorf("CloudStateOf = %s, want pending", state)
	}
}

// jobsFixture onboards n devices, each with one register job for
// connector "c", due at their onboarding time at(i minutes).
func jobsFixture(t *testing.T, f *fixture, n int) []identity.ID {
	devices := makeDevices("jobs", n)
	f.mustImport(t, f.batch("jobs", "m-jobs"), devices)
	ids := make([]identity.ID, n)
	// Onboard in reverse, so due order differs from insertion order.
	for i := n - 1; i >= 0; i-- {
		ids[i] = devices[i].Identity
		when := at(time.Duration(i) * time.Minute)
		must(t, f.s.RecordOnboarding(f.ctx, newCert(ids[i], i, when), when, registerJobs("c")...))
	}
	return ids
}

func testClaimJobs(t *testing.T, f *fixture) {
	ids := jobsFixture(t, f, 4)
	lease := time.Minute
	// At 2m only the jobs due at 0, 1 and 2 minutes are claimable.
	got, err := f.s.ClaimJobs(f.ctx, "w1", at(2*time.Minute), lease, 10)
	must(t, err)
	if len(got) != 3 {
		t.Fatalf("ClaimJobs at 2m = %d jobs, want 3", len(got))
	}
	for i, j := range got {
		if j.Identity != ids[i] || j.State != store.JobRunning || j.Worker != "w1" ||
			!j.LeaseUntil.Equal(at(2*time.Minute+lease)) {
			t.Fatalf("claimed job %d = %+v, want device %d running for w1 until 3m", i, j, i)
		}
	}
	if more, err := f.s.ClaimJobs(f.ctx, "w2", at(2*time.Minute), lease, 10); err != nil || len(more) != 0 {
		t.Fatalf("second claim = %v, %v; want nothing (leased or not due)", more, err)
	}
	must(t, f.s.CompleteJob(f.ctx, got[0].ID, at(150*time.Second)))
	must(t, f.s.RetryJob(f.ctx, got[1].ID, at(10*time.Minute), "broker down", at(150*time.Second)))
	must(t, f.s.FailJob(f.ctx, got[2].ID, "refused", at(150*time.Second)))
	wantErr(t, "CompleteJob(done)", f.s.CompleteJob(f.ctx, got[0].ID, at(3*time.Minute)), store.ErrConflict)
	wantErr(t, "RetryJob(pending)", f.s.RetryJob(f.ctx, got[1].ID, at(0), "", at(3*time.Minute)), store.ErrConflict)
	wantErr(t, "FailJob(unknown)", f.s.FailJob(f.ctx, 1<<40, "", at(3*time.Minute)), store.ErrNotFound)

	// At 4m: job 3 is due; job 1 waits until 10m.
	got2, err := f.s.ClaimJobs(f.ctx, "w2", at(4*time.Minute), lease, 10)
	must(t, err)
	if len(got2) != 1 || got2[0].Identity != ids[3] {
		t.Fatalf("ClaimJobs at 4m = %+v, want device 3's job", got2)
	}
	// w2 dies. At its lease's end the job is claimable again; so is job 1 at 10m.
	if again, err := f.s.ClaimJobs(f.ctx, "w3", at(5*time.Minute-time.Microsecond), lease, 10); err != nil || len(again) != 0 {
		t.Fatalf("claim before the lease ends = %v, %v; want nothing", again, err)
	}
	got3, err := f.s.ClaimJobs(f.ctx, "w3", at(10*time.Minute), lease, 10)
	must(t, err)
	// Ordered by NextRunAt: device 3's job was due at 3m, device 1's at 10m.
	if len(got3) != 2 || got3[0].Identity != ids[3] || got3[1].Identity != ids[1] || got3[0].Worker != "w3" {
		t.Fatalf("ClaimJobs at 10m = %+v, want device 3's reclaimed job, then device 1's retried one", got3)
	}
	if got3[1].Attempts != 1 || got3[1].LastError != "broker down" || got3[0].Attempts != 0 {
		t.Errorf("attempts/errors = %+v", got3)
	}
	done, err := f.s.ListJobs(f.ctx, store.JobFilter{State: store.JobDone})
	must(t, err)
	failed, err := f.s.ListJobs(f.ctx, store.JobFilter{State: store.JobFailed, Limit: 1})
	must(t, err)
	if len(done) != 1 || done[0].Attempts != 1 || len(failed) != 1 || failed[0].LastError != "refused" {
		t.Errorf("done = %+v, failed = %+v", done, failed)
	}
	if _, err := f.s.ClaimJobs(f.ctx, "w", at(0), 0, 1); err == nil {
		t.Error("ClaimJobs with a zero lease succeeded")
	}
}

// testClaimConcurrently has 16 claimers drain the queue: every job is
// claimed exactly once.
func testClaimConcurrently(t *testing.T, f *fixture) {
	const n = 60
	jobsFixture(t, f, n)
	var mu sync.Mutex
	claimed := map[int64]string{}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Go(func() {
			worker := fmt.Sprint("w", w)
			for {
				got, err := f.s.ClaimJobs(f.ctx, worker, at(time.Hour), time.Hour, 3)
				if err != nil || len(got) == 0 {
					errs <- err
					return
				}
				mu.Lock()
				for _, j := range got {
					if other, dup := claimed[j.ID]; dup {
						mu.Unlock()
						errs <- fmt.Errorf("job %d claimed by %s and %s", j.ID, other, worker)
						return
					}
					claimed[j.ID] = worker
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
	if len(claimed) != n {
		t.Fatalf("claimed %d distinct jobs, want %d", len(claimed), n)
	}
}

// testLatestJobs checks LatestJobs against ListJobs: for each device its
// latest job per connector, whatever else the device has.
func testLatestJobs(t *testing.T, f *fixture) {
	devices := makeDevices("latest", 3)
	f.mustImport(t, f.batch("latest", "m-latest"), devices)
	a, b, c := devices[0].Identity, devices[1].Identity, devices[2].Identity
	must(t, f.s.RecordOnboarding(f.ctx, newCert(a, 1, at(time.Hour)), at(time.Hour), registerJobs("mqtt", "hook")...))
	must(t, f.s.RecordOnboarding(f.ctx, newCert(a, 2, at(2*time.Hour)), at(2*time.Hour), registerJobs("mqtt")...)) // a renewal
	must(t, f.s.RecordOnboarding(f.ctx, newCert(c, 3, at(time.Hour)), at(time.Hour), registerJobs("mqtt")...))
	must(t, f.s.RevokeDevice(f.ctx, c, "lost", at(3*time.Hour), store.Job{Kind: store.JobDeregister, Connector: "mqtt"}))

	got, err := f.s.LatestJobs(f.ctx, []identity.ID{a, b, c})
	must(t, err)
	if _, has := got[b]; has || len(got) != 2 {
		t.Fatalf("LatestJobs = %d devices (%v); want a and c only", len(got), got)
	}
	for _, id := range []identity.ID{a, c} {
		all, err := f.s.ListJobs(f.ctx, store.JobFilter{Identity: id})
		must(t, err)
		want := map[string]store.Job{}
		for _, j := range all { // newest first
			if _, seen := want[j.Connector]; !seen {
				want[j.Connector] = j
			}
		}
		if len(got[id]) != len(want) {
			t.Fatalf("device %s: %d latest jobs, want %d", id.Short(), len(got[id]), len(want))
		}
		for _, j := range got[id] {
			equal(t, "latest job of "+j.Connector, j, want[j.Connector])
		}
		gs, ge := store.CloudStateOf(got[id])
		ws, we := store.CloudStateOf(all)
		if gs != ws || ge != we {
			t.Errorf("device %s: cloud state %s/%q from LatestJobs, %s/%q from ListJobs", id.Short(), gs, ge, ws, we)
		}
	}
	if got, err := f.s.LatestJobs(f.ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("LatestJobs(nil) = %v, %v", got, err)
	}
	if _, err := f.s.LatestJobs(f.ctx, make([]identity.ID, store.MaxPageSize+1)); err == nil {
		t.Error("LatestJobs of more than MaxPageSize identities succeeded")
	}
}
