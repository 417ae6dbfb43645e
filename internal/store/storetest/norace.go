//go:build !race

package storetest

// largeImport is the device count of the suite's large import: the
// issue's 100,000-device manifest in one ImportBatch call.
const largeImport = 100_000
