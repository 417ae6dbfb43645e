package connector

import (
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Outbox is the one policy of which connector jobs a change to a device
// enqueues, in the transaction that records the change (store.Jobs): the
// onboarding service, the admin service and any later front door ask it,
// so that they cannot disagree about what a cloud service is told.
type Outbox struct {
	// Connectors names the cloud connectors devices are registered with.
	Connectors []string
}

// Onboarded is the jobs of an onboarding, renewals included: the
// certificate changed, and registering again is idempotent. One register
// job per connector.
func (o Outbox) Onboarded(id identity.ID) []store.Job {
	return o.jobs(store.JobRegister, id)
}

// Revoked is the jobs of revoking d: one deregister job per connector,
// and none for a device never onboarded, which no cloud was told of.
func (o Outbox) Revoked(d store.Device) []store.Job {
	if d.OnboardedAt.IsZero() {
		return nil
	}
	return o.jobs(store.JobDeregister, d.Identity)
}

// Transitioned is the jobs of transition t of d, the device as it was
// before (read under its row lock: store.TransitionRequest.Jobs).
// Suspending withdraws the device's access (deregister), resuming
// restores it (register); revoking and decommissioning withdraw it as
// Revoked does, if any cloud was ever told of the device; reprovisioning
// tells no one: the device is registered again when it onboards afresh.
func (o Outbox) Transitioned(t store.Transition, d store.Device) []store.Job {
	switch t {
	case store.TransitionSuspend:
		return o.jobs(store.JobDeregister, d.Identity)
	case store.TransitionResume:
		return o.jobs(store.JobRegister, d.Identity)
	case store.TransitionRevoke, store.TransitionDecommission:
		return o.Revoked(d)
	}
	return nil
}

// JobsOf is Transitioned for t as a store.TransitionRequest's Jobs.
func (o Outbox) JobsOf(t store.Transition) func(before store.Device) []store.Job {
	return func(before store.Device) []store.Job { return o.Transitioned(t, before) }
}

func (o Outbox) jobs(kind string, id identity.ID) []store.Job {
	if len(o.Connectors) == 0 {
		return nil
	}
	jobs := make([]store.Job, len(o.Connectors))
	for i, name := range o.Connectors {
		jobs[i] = store.Job{Kind: kind, Connector: name, Identity: id}
	}
	return jobs
}
