package httpapi

import (
	"context"
	"net/url"
	"strconv"

	"github.com/hallmark-iot/hallmark/internal/monitoring"
)

// ReportStatus sends a device's status report; t.HTTP must present the
// device's certificate. A refusal is the problem as onboarding's error
// (errors.Is onboarding.ErrSuspended, …).
func (t *OnboardingTransport) ReportStatus(ctx context.Context, r monitoring.StatusReport) (monitoring.Receipt, error) {
	var receipt monitoring.Receipt
	return receipt, t.post(ctx, PathDeviceStatus, r, &receipt)
}

// EventQuery selects device events (GET /v1/admin/events).
type EventQuery struct {
	Kind     string
	Identity string
	After    int64
	Limit    int
}

// ListEvents returns one page of the device event log.
func (c *Client) ListEvents(ctx context.Context, q EventQuery) (EventList, error) {
	v := url.Values{}
	if q.Kind != "" {
		v.Set("kind", q.Kind)
	}
	if q.Identity != "" {
		v.Set("identity", q.Identity)
	}
	if q.After > 0 {
		v.Set("after", strconv.FormatInt(q.After, 10))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var out EventList
	return out, c.do(ctx, "GET", PathAdminEvents, v, nil, "", &out)
}
