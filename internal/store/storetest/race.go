//go:build race

package storetest

// largeImport is the device count of the suite's large import. The race
// detector slows SQLite's transpiled C about twentyfold; the test without
// it and the benchmark import the full 100,000.
const largeImport = 5_000
