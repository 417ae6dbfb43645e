package storetest

import (
	"testing"

	"github.com/hallmark-iot/hallmark/internal/store"
)

func TestCloudStateOf(t *testing.T) {
	job := func(id int64, conn, kind string, state store.JobState, lastErr string) store.Job {
		return store.Job{ID: id, Connector: conn, Kind: kind, State: state, LastError: lastErr}
	}
	reg, dereg := store.JobRegister, store.JobDeregister
	for _, c := range []struct {
		name      string
		jobs      []store.Job
		state     string
		lastError string
	}{
		{"no jobs", nil, store.CloudNone, ""},
		{"pending", []store.Job{job(1, "a", reg, store.JobPending, "")}, store.CloudPending, ""},
		{"retrying", []store.Job{job(1, "a", reg, store.JobPending, "503")}, store.CloudPending, "503"},
		{"active", []store.Job{job(1, "a", reg, store.JobDone, "old"), job(2, "b", reg, store.JobDone, "")}, store.CloudActive, ""},
		{"one failed", []store.Job{job(1, "a", reg, store.JobDone, ""), job(2, "b", reg, store.JobFailed, "401")}, store.CloudFailed, "401"},
		// Only the latest job of a connector counts, in any input order.
		{"renewed after failure", []store.Job{job(3, "a", reg, store.JobDone, ""), job(1, "a", reg, store.JobFailed, "x")}, store.CloudActive, ""},
		{"deregistered", []store.Job{job(1, "a", reg, store.JobDone, ""), job(2, "a", dereg, store.JobDone, "")}, store.CloudDeregistered, ""},
		{"deregistering", []store.Job{job(1, "a", reg, store.JobDone, ""), job(2, "a", dereg, store.JobRunning, "")}, store.CloudPending, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			state, lastErr := store.CloudStateOf(c.jobs)
			if state != c.state || lastErr != c.lastError {
				t.Errorf("CloudStateOf = %q, %q; want %q, %q", state, lastErr, c.state, c.lastError)
			}
		})
	}
}
