package onboarding

import (
	"context"
	"crypto/x509"
	"fmt"
)

// CRLReason codes (RFC 5280 section 5.3.1) a device may give when it
// revokes a certificate of its own. The others are the CA's to give
// (cACompromise, aACompromise), concern attribute certificates
// (privilegeWithdrawn) or are not revocations (certificateHold,
// removeFromCRL).
const (
	ReasonUnspecified          = 0
	ReasonKeyCompromise        = 1
	ReasonAffiliationChanged   = 3
	ReasonSuperseded           = 4
	ReasonCessationOfOperation = 5
)

var ownReasons = map[int]string{
	ReasonUnspecified: "unspecified", ReasonKeyCompromise: "key-compromise", ReasonAffiliationChanged: "affiliation-changed",
	ReasonSuperseded: "superseded", ReasonCessationOfOperation: "cessation-of-operation",
}

// RevokeOwn revokes leaf, the certificate that authenticated the request
// (verified against the platform's CA by the front door), at its
// holder's request: a device that stops using an operational key (CMP
// rr), or that rejects a certificate just issued to it (CMP certConf).
// Only that certificate is revoked; the device keeps its standing and
// may renew or enrol again. The device must be allowed to use leaf (as
// for a renewal: not suspended, revoked or decommissioned, the
// certificate neither revoked nor superseded beyond its grace). The
// outcome is recorded (action device.revoke-certificate); revoking a
// certificate revoked meanwhile changes nothing and is no error.
func (s *Service) RevokeOwn(ctx context.Context, leaf *x509.Certificate, reason int, addr string) error {
	detail, ok := ownReasons[reason]
	dev, cert, err := s.deviceOf(ctx, leaf)
	if err == nil && !ok {
		err = fmt.Errorf("%w: revocation reason %d is not one a device may give (0, 1, 3, 4 or 5)", ErrMalformed, reason)
	}
	if err != nil {
		s.audit(ctx, dev.Identity, "device.revoke-certificate", "denied", ErrorCode(err), addr)
		return err
	}
	ev := Event{Time: s.cfg.Now(), Identity: dev.Identity, Action: "device.revoke-certificate", Outcome: "ok", Detail: detail, Source: addr}
	changed, err := s.cfg.State.RevokeCertificate(ctx, cert.Serial, reason, ev.Time, ev)
	if err != nil {
		s.audit(ctx, dev.Identity, "device.revoke-certificate", "error", ErrorCode(err), addr)
		return fmt.Errorf("revoke certificate %x: %w", cert.Serial, err)
	}
	if changed && s.cfg.CertificatesRevoked != nil {
		s.cfg.CertificatesRevoked()
	}
	return nil
}
