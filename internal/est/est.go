// Package est owns Hallmark's EST front door (RFC 7030, with RFC 8951's
// clarifications): the /.well-known/est routes, their media types, the
// base64 PKCS #10 and PKCS #7 certs-only encodings, and the mapping of the
// onboarding service's answers to plain-text HTTP errors. It is a binding
// only (decision 0007): who may enrol, what is certified and what is
// recorded are the onboarding service's (EnrolProven for an initial
// enrolment authenticated by the enrolment key's TLS handshake,
// RenewProven for a re-enrolment over mutual TLS with the operational
// certificate; each with a PKCS #10 request bound to the connection). docs/front-doors.md describes the door.
package est

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
)

// Media types (RFC 7030 §4, RFC 8951).
const (
	MediaPKCS10   = "application/pkcs10"
	MediaCACerts  = "application/pkcs7-mime"
	MediaCerts    = "application/pkcs7-mime; smime-type=certs-only"
	MediaCSRAttrs = "application/csrattrs"
)

// Prefix is the well-known root of every EST route.
const Prefix = "/.well-known/est"

// Service is what the door asks of the onboarding service
// (*onboarding.Service is one).
type Service interface {
	EnrolProven(ctx context.Context, req onboarding.ProvenEnrolment, addr string) (*onboarding.Credentials, error)
	RenewProven(ctx context.Context, req onboarding.ProvenRenewal, addr string) (*onboarding.Credentials, error)
}

// Config configures the door.
type Config struct {
	Service Service
	// Verify checks an operational certificate chain as mutual TLS
	// presented it (the device routes' verifier).
	Verify httpapi.DeviceVerifier
	// CACerts returns the DER certificates /cacerts hands out: under a
	// product label, the CA that issues its devices and its root; without
	// one (""), every CA devices are issued under. An unknown label is
	// ErrUnknownLabel.
	CACerts func(ctx context.Context, label string) ([][]byte, error)
	Now     func() time.Time
}

// Door serves the EST routes.
type Door struct {
	cfg Config
}

// New checks cfg and builds the door.
func New(cfg Config) (*Door, error) {
	if cfg.Service == nil || cfg.Verify == nil || cfg.CACerts == nil {
		return nil, errors.New("est: a service, a certificate verifier and the CA certificates are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Door{cfg: cfg}, nil
}

// Routes are the door's routes, unlabelled and under a product label
// (/.well-known/est/<product>/…), for httpapi.Server.Handle.
func (d *Door) Routes() []httpapi.Route {
	csr := &httpapi.RawBody{MediaTypes: []string{MediaPKCS10}, Description: "The base64 of a DER PKCS #10 request for the device's operational key, naming the identity as its one common name, its challengePassword the base64 of this TLS connection's RFC 9266 tls-exporter value."}
	certs := []httpapi.Response{{Status: 200, Description: "The issued certificate and the CA above it, base64 PKCS #7 certs-only.", MediaType: MediaCerts}}
	label := map[string]string{"label": "A product ID: the device must be of this product."}
	var rts []httpapi.Route
	for _, labelled := range []bool{false, true} {
		base, op, params := Prefix, "", map[string]string(nil)
		if labelled {
			base, op, params = Prefix+"/{label}", "Labelled", label
		}
		rts = append(rts,
			httpapi.Route{Method: "GET", Path: base + "/cacerts", Handler: http.HandlerFunc(d.cacerts), Doc: httpapi.RouteDoc{
				OperationID: "estCACerts" + op, Summary: "EST: the CA certificates, base64 PKCS #7 certs-only.", Tag: "onboarding", PathParams: params,
				Responses: []httpapi.Response{{Status: 200, Description: "Under a label, the CA that issues the product's devices and its root; without one, each issuing CA and its root.", MediaType: MediaCACerts},
					{Status: 404, Description: "No product has the label.", MediaType: "text/plain"}},
			}},
			httpapi.Route{Method: "GET", Path: base + "/csrattrs", Handler: http.HandlerFunc(d.csrattrs), Doc: httpapi.RouteDoc{
				OperationID: "estCSRAttrs" + op, Summary: "EST: the attributes a request must carry (challengePassword).", Tag: "onboarding", PathParams: params,
				Responses: []httpapi.Response{{Status: 200, Description: "base64 CsrAttrs.", MediaType: MediaCSRAttrs}},
			}},
			httpapi.Route{Method: "POST", Path: base + "/simpleenroll", Handler: http.HandlerFunc(d.simpleenroll), Doc: httpapi.RouteDoc{
				OperationID: "estSimpleEnroll" + op, Summary: "EST: initial enrolment, TLS client certificate of the enrolment key.", Tag: "onboarding", PathParams: params,
				Description: "The TLS client certificate is self-signed by the device's enrolment key (ECDSA P-256 or Ed25519), whose SPKI hashes to a registered identity. Errors are one line of text/plain.",
				RawRequest:  csr, Responses: certs,
			}},
			httpapi.Route{Method: "POST", Path: base + "/simplereenroll", Handler: http.HandlerFunc(d.simplereenroll), Doc: httpapi.RouteDoc{
				OperationID: "estSimpleReenroll" + op, Summary: "EST: re-enrolment over mutual TLS with the current operational certificate.", Tag: "device", PathParams: params,
				Auth: httpapi.AuthMutualTLS, RawRequest: csr, Responses: certs,
			}},
		)
	}
	return rts
}

// Register adds the door's routes to api.
func (d *Door) Register(api *httpapi.Server) error {
	for _, rt := range d.Routes() {
		if err := api.Handle(rt); err != nil {
			return fmt.Errorf("est: %w", err)
		}
	}
	return nil
}

// ErrUnknownLabel is CACerts' answer for a label no product has.
var ErrUnknownLabel = errors.New("no product has this label")

func (d *Door) cacerts(w http.ResponseWriter, r *http.Request) {
	certs, err := d.cfg.CACerts(r.Context(), r.PathValue("label"))
	switch {
	case errors.Is(err, ErrUnknownLabel):
		writeError(w, http.StatusNotFound, "no product has the label "+strconv.Quote(r.PathValue("label"))+"; use the product's ID, or no label")
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, "internal error; the platform's log has the detail")
		return
	}
	p7, err := CertsOnly(certs)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "the CA certificates cannot be encoded")
		return
	}
	writeBase64(w, MediaCACerts, p7)
}

// csrAttrs is the DER CsrAttrs (RFC 7030 §4.5.2) naming the one attribute
// a request must carry: challengePassword (PKCS #9, 1.2.840.113549.1.9.7).
var csrAttrs = []byte{0x30, 0x0b, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x07}

func (d *Door) csrattrs(w http.ResponseWriter, r *http.Request) {
	writeBase64(w, MediaCSRAttrs, csrAttrs)
}

func (d *Door) simpleenroll(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		writeError(w, http.StatusUnauthorized, "no TLS client certificate: initial enrolment needs a certificate self-signed by the device's enrolment key (ECDSA P-256 or Ed25519); "+
			"a device whose enrolment key is ML-DSA cannot sign a TLS handshake here and must use the native protocol (hallmark device onboard) or CMP")
		return
	}
	der, ok := d.readCSR(w, r)
	if !ok {
		return
	}
	leaf := r.TLS.PeerCertificates[0]
	creds, err := d.cfg.Service.EnrolProven(r.Context(), onboarding.ProvenEnrolment{
		EnrolmentKey: leaf.RawSubjectPublicKeyInfo, Product: r.PathValue("label"),
		Key: onboarding.OperationalKey{CSR: der, Binding: onboarding.HandshakeBinding(channelBinding(r))}}, audit.Source(r.RemoteAddr))
	d.answer(w, creds, err)
}

func (d *Door) simplereenroll(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		writeError(w, http.StatusUnauthorized, "no TLS client certificate: re-enrolment needs the device's current operational certificate")
		return
	}
	chain := make([][]byte, len(r.TLS.PeerCertificates))
	for i, c := range r.TLS.PeerCertificates {
		chain[i] = c.Raw
	}
	leaf, err := d.cfg.Verify(chain, d.cfg.Now())
	if err != nil {
		d.answer(w, nil, onboarding.ErrNotOnboarded)
		return
	}
	der, ok := d.readCSR(w, r)
	if !ok {
		return
	}
	// Under a label, the certificate's device must be of that product,
	// as at the initial enrolment.
	creds, err := d.cfg.Service.RenewProven(r.Context(), onboarding.ProvenRenewal{Leaf: leaf, Product: r.PathValue("label"),
		Key: onboarding.OperationalKey{CSR: der, Binding: onboarding.HandshakeBinding(channelBinding(r))}}, audit.Source(r.RemoteAddr))
	d.answer(w, creds, err)
}

// readCSR checks the media type and reads and decodes the body, answering
// the client itself if it cannot.
func (d *Door) readCSR(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != MediaPKCS10 {
		writeError(w, http.StatusUnsupportedMediaType, "the request's Content-Type must be "+MediaPKCS10)
		return nil, false
	}
	if cte := r.Header.Get("Content-Transfer-Encoding"); cte != "" && !strings.EqualFold(cte, "base64") {
		writeError(w, http.StatusBadRequest, "Content-Transfer-Encoding must be base64 (RFC 8951)")
		return nil, false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "the request body could not be read")
		return nil, false
	}
	if len(body) > MaxBody {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body exceeds %d bytes; a PKCS #10 request is far smaller", MaxBody))
		return nil, false
	}
	der, err := DecodeCSR(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return nil, false
	}
	return der, true
}

// answer writes the issued chain, or the service's refusal as one line.
func (d *Door) answer(w http.ResponseWriter, creds *onboarding.Credentials, err error) {
	if err != nil {
		status, msg := refusal(err)
		if wait, ok := onboarding.RetryAfter(err); ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)))
		}
		writeError(w, status, msg)
		return
	}
	var chain [][]byte
	for _, c := range creds.CertificateChain {
		if b, _ := pem.Decode([]byte(c)); b != nil {
			chain = append(chain, b.Bytes)
		}
	}
	p7, perr := CertsOnly(chain)
	if perr != nil {
		writeError(w, http.StatusInternalServerError, "the issued chain cannot be encoded")
		return
	}
	writeBase64(w, MediaCerts, p7)
}

// refusal maps the service's errors to a status and one line. As on the
// native door, nothing says whether an unproven identity is registered.
func refusal(err error) (int, string) {
	switch code := onboarding.ErrorCode(err); code {
	case "malformed", "bad-csr":
		return http.StatusBadRequest, oneLine(err.Error())
	case "proof-rejected":
		return http.StatusForbidden, "enrolment refused: the TLS client certificate's key is not a registered, enrolable device identity"
	case "not-onboarded", "certificate-superseded":
		return http.StatusForbidden, "re-enrolment refused: the TLS client certificate is not this device's current operational certificate here (" + code + "): " + oneLine(err.Error())
	case "revoked", "suspended", "decommissioned", "migrated":
		return http.StatusForbidden, "refused: the device is " + code
	case "not-locked":
		return http.StatusForbidden, oneLine(err.Error())
	case "rate-limited":
		return http.StatusTooManyRequests, "too many enrolment requests; retry later"
	case "renewal-not-due", "renewal-too-soon":
		return http.StatusTooManyRequests, oneLine(err.Error())
	case "allocation-unavailable":
		return http.StatusServiceUnavailable, "the device's cloud endpoint cannot be allocated now; retry later"
	default:
		return http.StatusInternalServerError, "internal error; the platform's log has the detail"
	}
}

func oneLine(s string) string { return strings.NewReplacer("\n", " ", "\r", " ").Replace(s) }

// channelBinding is the connection's RFC 9266 tls-exporter value; nil
// without TLS.
func channelBinding(r *http.Request) []byte {
	if r.TLS == nil {
		return nil
	}
	ekm, err := r.TLS.ExportKeyingMaterial(onboarding.ChannelBindingLabel, nil, onboarding.ChannelBindingSize)
	if err != nil {
		return nil
	}
	return ekm
}

func writeBase64(w http.ResponseWriter, mediaType string, der []byte) {
	h := w.Header()
	h.Set("Content-Type", mediaType)
	h.Set("Content-Transfer-Encoding", "base64")
	enc := base64.StdEncoding.EncodeToString(der)
	var b strings.Builder
	for len(enc) > 64 {
		b.WriteString(enc[:64])
		b.WriteString("\r\n")
		enc = enc[64:]
	}
	b.WriteString(enc)
	b.WriteString("\r\n")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, b.String())
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, msg+"\n")
}
