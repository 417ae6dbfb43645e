package app

import (
	"bytes"

	"github.com/hallmark-iot/hallmark/internal/est"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
)

// startEST adds the EST front door (docs/front-doors.md), a binding over
// the onboarding service devices uses for the native protocol, so that
// both doors count, audit and refuse alike.
func (p *Platform) startEST(api *httpapi.Server, devices *onboarding.Service, verify httpapi.DeviceVerifier) error {
	door, err := est.New(est.Config{Service: devices, Verify: verify, CACerts: p.estCACerts, Now: p.cfg.Now})
	if err != nil {
		return err
	}
	return door.Register(api)
}

// estCACerts is every CA devices are issued under: each issuing CA, then
// its root.
func (p *Platform) estCACerts() [][]byte {
	var out [][]byte
	for _, ca := range p.CAs.All() {
		issuing, root := ca.IssuingCertificate().Raw, ca.RootCertificate().Raw
		out = append(out, issuing)
		if !bytes.Equal(root, issuing) {
			out = append(out, root)
		}
	}
	return out
}
