package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/cmp"
	"github.com/hallmark-iot/hallmark/internal/est"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// startEST adds the EST front door (docs/front-doors.md), a binding over
// the onboarding service devices uses for the native protocol, so that
// both doors count, audit and refuse alike.
func (p *Platform) startEST(api *httpapi.Server, devices *onboarding.Service, verify httpapi.DeviceVerifier) error {
	door, err := est.New(est.Config{Service: devices, Verify: verify, CACerts: p.caCertificates, Now: p.cfg.Now})
	if err != nil {
		return err
	}
	return door.Register(api)
}

// caCertificates is what a front door hands out as the CA certificates
// (EST cacerts, CMP genm caCerts): under a product label, the CA that
// issues the product's devices, then its root; without one, every CA's.
func (p *Platform) caCertificates(ctx context.Context, label string) ([][]byte, error) {
	cas := p.CAs.All()
	if label != "" {
		prod, err := p.Store.GetProduct(ctx, label)
		if errors.Is(err, store.ErrNotFound) {
			// Each door has its own sentinel; the one error is both.
			return nil, fmt.Errorf("product label %q: %w (%w)", label, est.ErrUnknownLabel, cmp.ErrUnknownLabel)
		}
		if err != nil {
			return nil, fmt.Errorf("product %q: %w", label, err)
		}
		ca, err := p.CAs.Get(prod.IssuingCA)
		if err != nil {
			return nil, fmt.Errorf("product %q: %w", label, err)
		}
		cas = []*pki.CA{ca}
	}
	var out [][]byte
	for _, ca := range cas {
		issuing, root := ca.IssuingCertificate().Raw, ca.RootCertificate().Raw
		out = append(out, issuing)
		if !bytes.Equal(root, issuing) {
			out = append(out, root)
		}
	}
	return out, nil
}
