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
