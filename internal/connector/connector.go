// Package connector owns registering onboarded devices with the customer's
// cloud service: the Connector interface each cloud implements, and the
// worker that runs registration jobs from the store's durable queue with
// retries. Implementations live in subpackages (mosquitto, webhook).
package connector

import (
	"context"
	"errors"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
)

// ErrPermanent marks a failure that retrying cannot fix (a refused
// configuration, a malformed request); the worker stops retrying the job.
var ErrPermanent = errors.New("permanent connector failure")

// Device is what a connector learns about a device to register.
type Device struct {
	Identity identity.ID
	// ProductID and CloudEndpoint come from the device's product.
	ProductID     string
	CloudEndpoint string
	// Certificate is the device's current certificate (DER).
	Certificate []byte
	// OnboardedAt is when the device was onboarded.
	OnboardedAt time.Time
}

// Connector registers devices with one cloud service. Both methods must be
// idempotent: a job may run again after a crash between the effect and
// its completion being recorded, and must then change nothing.
type Connector interface {
	// Name identifies the connector in jobs, logs and metrics.
	Name() string
	// Register makes the device known to the cloud service, allowed to
	// connect with its certificate and to use its own topics only.
	Register(ctx context.Context, d Device) error
	// Deregister removes the device; removing an unknown device succeeds.
	Deregister(ctx context.Context, id identity.ID) error
}
