package fleetcmd

import (
	"context"

	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// RegisterTimingDevice registers a device of suite, as probe-timing --local
// does, for the external tests to probe a platform of their own.
func RegisterTimingDevice(ctx context.Context, admin *httpapi.Client, suite sigalg.Suite) (identity.ID, error) {
	targets, err := registerTimingDevices(ctx, admin, []sigalg.Suite{suite})
	if err != nil {
		return identity.ID{}, err
	}
	return targets[0].known, nil
}
