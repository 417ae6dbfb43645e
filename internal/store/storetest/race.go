//go:build race

package storetest

// largeImport is the device count of the suite's large import. The race
// detector slows SQLite's transpiled C about twentyfold; the test without
// it and the benchmark import the full 100,000. Here the size is not what
// is tested (the race detector is), so it is just enough to cross the
// SQLite importer's 1,024-row cancellation check twice and end mid-way
// through a third: 5,000 took 7-9 s of each SQLite contract run.
const largeImport = 2_500
