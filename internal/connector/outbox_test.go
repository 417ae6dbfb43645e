package connector

import (
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

func TestOutboxPolicy(t *testing.T) {
	id := identity.ID{1, 2, 3}
	o := Outbox{Connectors: []string{"mqtt", "hook"}}
	jobs := o.Onboarded(id)
	if len(jobs) != 2 || jobs[0].Kind != store.JobRegister || jobs[0].Connector != "mqtt" ||
		jobs[1].Connector != "hook" || jobs[1].Identity != id {
		t.Fatalf("Onboarded = %+v, want one register job per connector", jobs)
	}
	if jobs := o.Revoked(store.Device{Identity: id}); len(jobs) != 0 {
		t.Fatalf("Revoked(never onboarded) = %+v, want none: no cloud knows the device", jobs)
	}
	jobs = o.Revoked(store.Device{Identity: id, OnboardedAt: time.Unix(1, 0)})
	if len(jobs) != 2 || jobs[0].Kind != store.JobDeregister || jobs[1].Identity != id {
		t.Fatalf("Revoked(onboarded) = %+v, want one deregister job per connector", jobs)
	}
	if jobs := (Outbox{}).Onboarded(id); jobs != nil {
		t.Fatalf("no connectors: %+v, want no jobs", jobs)
	}
}

// TestOutboxTransitions: what each lifecycle transition tells the clouds.
func TestOutboxTransitions(t *testing.T) {
	id := identity.ID{4, 5, 6}
	onboarded := store.Device{Identity: id, OnboardedAt: time.Unix(1, 0)}
	never := store.Device{Identity: id}
	o := Outbox{Connectors: []string{"mqtt", "hook"}}
	for _, c := range []struct {
		t    store.Transition
		d    store.Device
		kind string // "" for no jobs
	}{
		{store.TransitionSuspend, onboarded, store.JobDeregister},
		{store.TransitionResume, onboarded, store.JobRegister},
		{store.TransitionRevoke, onboarded, store.JobDeregister},
		{store.TransitionRevoke, never, ""},
		{store.TransitionDecommission, onboarded, store.JobDeregister},
		{store.TransitionDecommission, never, ""},
		{store.TransitionReprovision, onboarded, ""},
		{store.TransitionReprovision, never, ""},
	} {
		jobs := o.JobsOf(c.t)(c.d)
		if c.kind == "" {
			if len(jobs) != 0 {
				t.Errorf("%s (onboarded %v): %+v, want no jobs", c.t, !c.d.OnboardedAt.IsZero(), jobs)
			}
			continue
		}
		if len(jobs) != 2 || jobs[0].Connector != "mqtt" || jobs[1].Connector != "hook" {
			t.Fatalf("%s: %+v, want one job per connector", c.t, jobs)
		}
		for _, j := range jobs {
			if j.Kind != c.kind || j.Identity != id {
				t.Errorf("%s: job %+v, want %s of %s", c.t, j, c.kind, id)
			}
		}
	}
	if jobs := (Outbox{}).Transitioned(store.TransitionSuspend, onboarded); jobs != nil {
		t.Errorf("no connectors: %+v, want no jobs", jobs)
	}
}
