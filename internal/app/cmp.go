package app

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/cmp"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// startCMP adds the Lightweight CMP door (RFC 9483 over RFC 6712) at
// /.well-known/cmp. Responses are signed with the platform's TLS key, by a
// certificate of its own for that key, so a client that trusts the
// platform's TLS root trusts its CMP answers.
func (p *Platform) startCMP(ctx context.Context, api *httpapi.Server, svc *onboarding.Service, verify httpapi.DeviceVerifier) error {
	cert, err := p.CA.IssueServerFor(ctx, p.tlsKey, []string{p.cfg.ServerName},
		[]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, serverCertValidity)
	if err != nil {
		return fmt.Errorf("cmp: response signing certificate: %w", err)
	}
	d := cmpDevices{svc: svc}
	srv, err := cmp.NewServer(cmp.Config{Devices: d, Signer: p.tlsKey, SignerChain: cert.Certificate,
		VerifyDevice: verify, CACerts: p.caCertificates, Log: p.cfg.Log, Now: p.cfg.Now})
	if err != nil {
		return err
	}
	h := srv.HTTPHandler(func(r *http.Request) string { return audit.Source(r.RemoteAddr) })
	doc := func(id, path string) httpapi.RouteDoc {
		d := httpapi.RouteDoc{OperationID: id, Tag: "device",
			Summary:     "Lightweight CMP (RFC 9483): ir, cr, p10cr, kur, rr, certConf and genm (id-it-caCerts)",
			Description: "A DER PKIMessage POSTed as application/pkixcmp (RFC 6712), at most 64 KiB; the answer is a DER PKIMessage signed by the platform. See docs/front-doors.md.",
			RawRequest:  &httpapi.RawBody{MediaTypes: []string{cmp.ContentType}, Description: "DER PKIMessage"},
			Responses:   []httpapi.Response{{Status: http.StatusOK, Description: "DER PKIMessage", MediaType: cmp.ContentType}}}
		if path == cmp.LabelPath {
			d.PathParams = map[string]string{"label": "a product label; the device's registered product decides its certificate"}
		}
		return d
	}
	for _, rt := range []httpapi.Route{
		{Method: http.MethodPost, Path: cmp.Path, Handler: h, Doc: doc("cmp", cmp.Path)},
		{Method: http.MethodPost, Path: cmp.LabelPath, Handler: h, Doc: doc("cmpLabel", cmp.LabelPath)},
	} {
		if err := api.Handle(rt); err != nil {
			return err
		}
	}
	return nil
}

// cmpDevices maps the CMP door onto the onboarding use cases and their
// errors onto CMP failure bits.
type cmpDevices struct{ svc *onboarding.Service }

func (d cmpDevices) Enrol(ctx context.Context, o cmp.Origin, enrolmentSPKI, operationalSPKI []byte) (cmp.Issued, error) {
	op, err := cmpOperationalKey(operationalSPKI)
	if err != nil {
		return cmp.Issued{}, err
	}
	creds, err := d.svc.EnrolProven(ctx, onboarding.ProvenEnrolment{EnrolmentKey: enrolmentSPKI, Product: o.Label,
		Key: onboarding.OperationalKey{Proven: op}, Exchange: o.Transaction, ExchangeExpires: o.Until}, o.Addr)
	return cmpIssued(creds, err)
}

func (d cmpDevices) Renew(ctx context.Context, o cmp.Origin, leaf *x509.Certificate, operationalSPKI []byte) (cmp.Issued, error) {
	op, err := cmpOperationalKey(operationalSPKI)
	if err != nil {
		return cmp.Issued{}, err
	}
	creds, err := d.svc.RenewProven(ctx, onboarding.ProvenRenewal{Leaf: leaf, Product: o.Label,
		Key: onboarding.OperationalKey{Proven: op}}, o.Addr)
	return cmpIssued(creds, err)
}

func (d cmpDevices) Revoke(ctx context.Context, o cmp.Origin, leaf *x509.Certificate, reason int) error {
	return cmpRefusal(d.svc.RevokeOwn(ctx, leaf, reason, o.Addr))
}

// cmpOperationalKey is the key the door verified the possession of.
func cmpOperationalKey(spki []byte) (crypto.PublicKey, error) {
	op, err := sigalg.ParsePublicKey(spki)
	if err != nil {
		return nil, &cmp.Refusal{FailBit: cmp.FailBadCertTemplate, Text: "the requested key is not one the platform certifies", Err: err}
	}
	return op, nil
}

func cmpIssued(creds *onboarding.Credentials, err error) (cmp.Issued, error) {
	if err != nil {
		return cmp.Issued{}, cmpRefusal(err)
	}
	var ders [][]byte
	for _, s := range creds.CertificateChain {
		b, _ := pem.Decode([]byte(s))
		if b == nil {
			return cmp.Issued{}, errors.New("cmp: a credentials chain entry is not PEM")
		}
		ders = append(ders, b.Bytes)
	}
	if len(ders) == 0 {
		return cmp.Issued{}, errors.New("cmp: empty credentials chain")
	}
	return cmp.Issued{Certificate: ders[0], Chain: ders[1:]}, nil
}

// cmpRefusal is the CMP answer to an onboarding refusal. An unknown
// identity and a wrong enrolment key are one answer, as on the native
// door.
func cmpRefusal(err error) error {
	if err == nil {
		return nil
	}
	r := func(bit int, text string) error { return &cmp.Refusal{FailBit: bit, Text: text, Err: err} }
	switch {
	case errors.Is(err, onboarding.ErrProofRejected):
		return r(cmp.FailSignerNotTrusted, "the protecting key is not the enrolment key of a device this platform may onboard")
	case errors.Is(err, onboarding.ErrRateLimited):
		return r(cmp.FailSystemUnavail, "too many requests; try again later")
	case errors.Is(err, onboarding.ErrAllocationUnavailable):
		return r(cmp.FailSystemUnavail, err.Error())
	case errors.Is(err, onboarding.ErrRevoked), errors.Is(err, onboarding.ErrSuspended),
		errors.Is(err, onboarding.ErrDecommissioned), errors.Is(err, onboarding.ErrMigrated),
		errors.Is(err, onboarding.ErrNotLocked), errors.Is(err, onboarding.ErrNotOnboarded):
		return r(cmp.FailNotAuthorized, err.Error())
	case errors.Is(err, onboarding.ErrBadCSR):
		return r(cmp.FailBadCertTemplate, err.Error())
	case errors.Is(err, onboarding.ErrChallengeUsed):
		return r(cmp.FailTransactionIDInUse, "transactionID already used; start a new transaction")
	case errors.Is(err, onboarding.ErrMalformed):
		return r(cmp.FailBadRequest, err.Error())
	case errors.Is(err, onboarding.ErrSuperseded):
		return r(cmp.FailNotAuthorized, err.Error())
	case errors.Is(err, onboarding.ErrRenewalNotDue), errors.Is(err, onboarding.ErrRenewalLimited):
		return r(cmp.FailNotAuthorized, err.Error())
	}
	return err
}
