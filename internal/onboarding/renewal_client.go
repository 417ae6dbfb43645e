package onboarding

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
)

// The device side of the renewal window: the platform says in every
// Credentials when the device should renew (RenewAfter), and the device
// renews on its own once that time has come.

// RenewalDue is when the holder of creds should renew: creds.RenewAfter,
// or, from a platform that does not send it, two thirds into the leaf
// certificate's validity.
func RenewalDue(creds *Credentials) (time.Time, error) {
	if !creds.RenewAfter.IsZero() {
		return creds.RenewAfter, nil
	}
	chain, err := decodeChain(creds, creds.Identity)
	if err != nil {
		return time.Time{}, err
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %v", ErrChainInvalid, err)
	}
	return leaf.NotAfter.Add(-leaf.NotAfter.Sub(leaf.NotBefore) / 3), nil
}

// RenewIfDue fetches the device's current credentials, authenticated by
// its certificate, and once they are due at now (RenewalDue) renews them
// for op with a request bound to the connection (RenewWithKey). It
// returns the credentials the device should keep, and whether they are
// new; a device renewed elsewhere since gets its current ones.
func (c *Client) RenewIfDue(ctx context.Context, id identity.ID, op crypto.Signer, now time.Time) (*Credentials, bool, error) {
	creds, err := c.Credentials(ctx)
	if err != nil {
		return nil, false, err
	}
	due, err := RenewalDue(creds)
	if err != nil {
		return nil, false, fmt.Errorf("credentials: %w", err)
	}
	if now.Before(due) {
		return creds, false, nil
	}
	renewed, err := c.RenewWithKey(ctx, id, op)
	if err != nil {
		return nil, false, err
	}
	return renewed, true, nil
}
