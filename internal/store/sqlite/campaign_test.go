package sqlite

import (
	"testing"

	"github.com/hallmark-iot/hallmark/internal/store"
	"github.com/hallmark-iot/hallmark/internal/store/storetest"
)

func BenchmarkCreateCampaign(b *testing.B) {
	storetest.BenchmarkCreateCampaign(b, func(b *testing.B) store.Store { return openFile(b) })
}
