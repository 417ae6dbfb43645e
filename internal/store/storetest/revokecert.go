package storetest

import (
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/store"
)

// testRevokeCertificate checks a holder's revocation of one certificate:
// that certificate only, with its reason and the audit event in the same
// write; the device and its other certificates untouched; a second
// request, a held certificate and an unknown serial changing nothing.
func testRevokeCertificate(t *testing.T, f *fixture) {
	d := f.deviceIn(t, "own-revoke", store.StateOnboarded)
	before := f.snapshot(t, d.id)
	current := d.certs[len(d.certs)-1]
	ev := store.AuditEvent{Actor: "device:" + d.id.String(), Action: "device.revoke-certificate", Subject: d.id.String(),
		Outcome: "ok", Detail: "key-compromise", RemoteAddr: "192.0.2.7"}
	changed, err := f.s.RevokeCertificate(f.ctx, current.Serial, store.ReasonKeyCompromise, at(5*time.Hour), ev)
	must(t, err)
	if !changed {
		t.Fatal("first revocation: changed false, want true")
	}
	got, err := f.s.GetCertificate(f.ctx, current.Serial)
	must(t, err)
	if !got.RevokedAt.Equal(at(5*time.Hour)) || got.RevocationReason != store.ReasonKeyCompromise {
		t.Fatalf("revoked certificate: revoked at %v for %d, want %v for %d", got.RevokedAt, got.RevocationReason, at(5*time.Hour), store.ReasonKeyCompromise)
	}
	after := f.snapshot(t, d.id)
	equal(t, "the device", after.Device, before.Device)
	equal(t, "jobs", after.Jobs, before.Jobs)
	for _, c := range after.Certs {
		if c.Serial != current.Serial {
			equal(t, "another certificate", c, certBySerial(t, before.Certs, c.Serial))
		}
	}
	if list, _ := f.s.ListRevokedCertificates(f.ctx, store.RevokedCursor{}, 0); !hasRevoked(list, current.Serial) {
		t.Fatalf("revoked certificate missing from ListRevokedCertificates: %+v", list)
	}

	again, err := f.s.RevokeCertificate(f.ctx, current.Serial, store.ReasonUnspecified, at(6*time.Hour), ev)
	must(t, err)
	if again {
		t.Fatal("second revocation: changed true, want false")
	}
	if got2, _ := f.s.GetCertificate(f.ctx, current.Serial); !got2.RevokedAt.Equal(got.RevokedAt) || got2.RevocationReason != got.RevocationReason {
		t.Fatalf("second revocation changed the certificate: %+v", got2)
	}

	held := f.deviceIn(t, "own-revoke-held", store.StateSuspended)
	heldCert := held.certs[len(held.certs)-1]
	if changed, err := f.s.RevokeCertificate(f.ctx, heldCert.Serial, store.ReasonKeyCompromise, at(7*time.Hour), ev); err != nil || changed {
		t.Fatalf("revoking a held certificate: %v, %v; want unchanged", changed, err)
	}
	if c, _ := f.s.GetCertificate(f.ctx, heldCert.Serial); c.RevocationReason != store.ReasonCertificateHold {
		t.Fatalf("held certificate after a holder's revocation: reason %d, want certificateHold", c.RevocationReason)
	}

	_, err = f.s.RevokeCertificate(f.ctx, [16]byte{0xde, 0xad}, store.ReasonKeyCompromise, at(8*time.Hour), ev)
	wantErr(t, "unknown serial", err, store.ErrNotFound)

	f.settle(t)
	events, err := f.s.ListAudit(f.ctx, store.AuditFilter{Action: "device.revoke-certificate"})
	must(t, err)
	if len(events) != 1 || !events[0].Time.Equal(at(5*time.Hour)) || events[0].Subject != d.id.String() {
		t.Fatalf("audit events of the holder's revocations: %+v, want exactly the one that changed something", events)
	}
}

func certBySerial(t *testing.T, certs []store.Certificate, serial [16]byte) store.Certificate {
	t.Helper()
	for _, c := range certs {
		if c.Serial == serial {
			return c
		}
	}
	t.Fatalf("certificate %x not found", serial[:4])
	return store.Certificate{}
}

func hasRevoked(list []store.RevokedCertificate, serial [16]byte) bool {
	for _, rc := range list {
		if rc.Serial == serial {
			return true
		}
	}
	return false
}
