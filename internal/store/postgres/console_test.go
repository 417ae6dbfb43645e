package postgres

import (
	"testing"

	"github.com/hallmark-iot/hallmark/internal/store"
	"github.com/hallmark-iot/hallmark/internal/store/storetest"
	"github.com/hallmark-iot/hallmark/internal/store/storetest/fleetseed"
)

// BenchmarkConsole1M measures the console's reads with 1,000,000
// devices registered (storetest.BenchmarkConsole); it runs only when
// -bench names it.
func BenchmarkConsole1M(b *testing.B) {
	storetest.BenchmarkConsole(b, func(b *testing.B) store.Store { return openNew(b) }, func(b *testing.B, st store.Store) {
		fleetseed.OnboardPostgres(b, st.(*Store).pool)
	})
}
