package admin

import (
	"context"
	"errors"
	"time"

	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// DeviceStore is what the device use cases ask of the store.
type DeviceStore interface {
	GetDevice(ctx context.Context, id identity.ID) (store.Device, error)
	ListDevices(ctx context.Context, f store.DeviceFilter) ([]store.Device, error)
	ListCertificates(ctx context.Context, id identity.ID) ([]store.Certificate, error)
	TransitionDevice(ctx context.Context, id identity.ID, req store.TransitionRequest) (store.TransitionResult, error)
	ListJobs(ctx context.Context, f store.JobFilter) ([]store.Job, error)
	LatestJobs(ctx context.Context, ids []identity.ID) (map[identity.ID][]store.Job, error)
}

// Devices owns reading registered devices and changing their lifecycle
// state (lifecycle.go).
type Devices struct {
	base
	store  DeviceStore
	outbox connector.Outbox
	// certificatesChanged is told of a transition that changed
	// certificates (Config.CertificatesChanged); nil tells nobody.
	certificatesChanged func()
}

// notifying makes d tell changed of every transition that changes
// certificates.
func (d *Devices) notifying(changed func()) *Devices {
	d.certificatesChanged = changed
	return d
}

// NewDevices returns the device use cases on st; outbox decides the
// connector jobs a transition enqueues.
func NewDevices(st DeviceStore, outbox connector.Outbox, rec *audit.Recorder, now func() time.Time) *Devices {
	return &Devices{base: newBase(rec, now), store: st, outbox: outbox}
}

// DeviceStatus is a device with its registration with the cloud
// connectors, as store.CloudStateOf derives it from its jobs.
type DeviceStatus struct {
	store.Device
	Cloud, CloudError string
	// Certificates (newest first) and Jobs (newest first) are filled by
	// Get only.
	Certificates []store.Certificate
	Jobs         []store.Job
}

// ParseIdentity reads a device identity given by a caller; a malformed
// one names no device, so it is not found.
func ParseIdentity(v string) (identity.ID, error) {
	id, err := identity.Parse(v)
	if err != nil {
		return id, Errorf(CodeNotFound, "no device %q: an identity is 64 lowercase hex characters", truncate(v, 80))
	}
	return id, nil
}

// List returns one page of devices, in identity order, with their cloud
// state.
func (d *Devices) List(ctx context.Context, caller Caller, f store.DeviceFilter) (_ []DeviceStatus, err error) {
	c := caller.begin(ActionDeviceList)
	defer func() { err = d.finish(ctx, c, err) }()
	list, err := d.store.ListDevices(ctx, f)
	if err != nil {
		return nil, err
	}
	// Jobs come only with an onboarding: only onboarded (or since revoked)
	// devices are looked up, all in one query.
	var ids []identity.ID
	for _, dev := range list {
		if !dev.OnboardedAt.IsZero() {
			ids = append(ids, dev.Identity)
		}
	}
	latest, err := d.store.LatestJobs(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]DeviceStatus, len(list))
	for i, dev := range list {
		out[i] = DeviceStatus{Device: dev, Cloud: store.CloudNone}
		if jobs := latest[dev.Identity]; len(jobs) > 0 {
			out[i].Cloud, out[i].CloudError = store.CloudStateOf(jobs)
		}
	}
	return out, nil
}

// Get returns a device with its certificates and jobs.
func (d *Devices) Get(ctx context.Context, caller Caller, id identity.ID) (_ DeviceStatus, err error) {
	c := caller.begin(ActionDeviceGet)
	defer func() { err = d.finish(ctx, c, err) }()
	c.subject = "device:" + id.String()
	dev, err := d.lookup(ctx, id)
	if err != nil {
		return DeviceStatus{}, err
	}
	certs, err := d.store.ListCertificates(ctx, id)
	if err != nil {
		return DeviceStatus{}, err
	}
	out, err := d.withCloud(ctx, dev)
	out.Certificates = certs
	return out, err
}

// withCloud adds the device's cloud state and jobs. A device has a handful
// of jobs (one per connector and onboarding or revocation); the newest
// 1000 decide.
func (d *Devices) withCloud(ctx context.Context, dev store.Device) (DeviceStatus, error) {
	jobs, err := d.store.ListJobs(ctx, store.JobFilter{Identity: dev.Identity, Limit: store.MaxPageSize})
	if err != nil {
		return DeviceStatus{}, err
	}
	out := DeviceStatus{Device: dev, Jobs: jobs}
	out.Cloud, out.CloudError = store.CloudStateOf(jobs)
	return out, nil
}

// lookup returns the device, or a not-found error naming it.
func (d *Devices) lookup(ctx context.Context, id identity.ID) (store.Device, error) {
	dev, err := d.store.GetDevice(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return dev, Errorf(CodeNotFound, "no device %s", id)
	}
	return dev, err
}
