package sqlite

import (
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
	"github.com/hallmark-iot/hallmark/internal/store/storetest"
	"github.com/hallmark-iot/hallmark/internal/store/storetest/fleetseed"
)

// TestConsoleQueryPlans checks that the console's device filters are
// index range scans in page order, driven by the filter's own index: a
// full scan or a sort would make each page cost the whole fleet.
func TestConsoleQueryPlans(t *testing.T) {
	s := openFile(t)
	defer s.Close()
	for _, c := range []struct {
		filter store.DeviceFilter
		index  string
	}{
		{store.DeviceFilter{IdentityPrefix: "abc"}, "sqlite_autoindex_devices_1"},
		{store.DeviceFilter{IdentityPrefix: "ab", After: identity.ID{0xab, 1}}, "sqlite_autoindex_devices_1"},
		{store.DeviceFilter{RootOfTrust: "puf", After: identity.ID{1}}, "devices_by_class"},
		{store.DeviceFilter{CloudState: store.CloudPending}, "jobs_open_by_identity"},
		{store.DeviceFilter{CloudState: store.CloudPending, IdentityPrefix: "ab", After: identity.ID{0xab, 1}}, "jobs_open_by_identity"},
		{store.DeviceFilter{CloudState: store.CloudFailed, After: identity.ID{1}, State: store.StateOnboarded}, "jobs_failed_by_identity"},
		{store.DeviceFilter{CloudState: store.CloudFailed, RootOfTrust: "keygen", ProductID: "p"}, "jobs_failed_by_identity"},
	} {
		q, args, err := deviceQuery(c.filter)
		if err != nil {
			t.Fatal(err)
		}
		plan := queryPlan(t, s, q, args)
		first, _, _ := strings.Cut(plan, ";")
		if !strings.Contains(first, c.index) || strings.Contains(plan, "TEMP B-TREE") {
			t.Errorf("%+v:\nplan: %s\nwant a walk of %s first, without a sort", c.filter, plan, c.index)
		}
	}
}

// BenchmarkConsole1M measures the console's reads with 1,000,000
// devices registered (storetest.BenchmarkConsole); it runs only when
// -bench names it.
func BenchmarkConsole1M(b *testing.B) {
	storetest.BenchmarkConsole(b, func(b *testing.B) store.Store { return openFile(b) }, func(b *testing.B, st store.Store) {
		fleetseed.OnboardSQLite(b, st.(*Store).writer)
	})
}
