// Package migration owns the platform's side of a post-quantum migration
// (docs/migration.md, "The platform's side"): the device-facing exchange
// (a challenge over mutual TLS with the device's current certificate, then
// the continuity proof and a certificate request), the Service that checks
// the proof against the device on record and the migration a campaign
// opened for it (Authorizer), and records the new identity as the old
// one's successor in one store transaction, with its certificate, the old
// identity's retirement, the cloud registration jobs and the audit event.
// The proof itself is package continuity's; the lineage is the store's.
package migration
