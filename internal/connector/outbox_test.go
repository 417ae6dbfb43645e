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
