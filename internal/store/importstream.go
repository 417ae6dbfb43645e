package store

// DeviceSource yields the devices of a batch being imported, one at a
// time, so that an import need not hold a whole batch in memory: a
// manifest's records are inserted while the manifest is still being
// verified, in a transaction that commits only once the source has ended
// cleanly.
type DeviceSource interface {
	// Next returns the next device, or io.EOF after the last one. Any
	// other error aborts the import, nothing kept, and is returned by
	// ImportBatchStream, wrapped.
	Next() (Device, error)
	// Digest is the batch's manifest digest. It covers the whole manifest,
	// so it is read only after Next has returned io.EOF.
	Digest() [32]byte
}
