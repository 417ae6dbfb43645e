package postgres

import (
	"testing"

	"github.com/hallmark-iot/hallmark/internal/store"
	"github.com/hallmark-iot/hallmark/internal/store/storetest"
)

// TestCampaignReportsOverlap: a report's transaction holds its device's
// row, not the campaign's, so other devices' reports and an
// administrative halt complete while it is open, and its campaign step
// sees them.
func TestCampaignReportsOverlap(t *testing.T) {
	storetest.CampaignReportsOverlap(t, func(t *testing.T) store.Store { return openNew(t) })
}
