package revocation

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hallmark-iot/hallmark/internal/pki"
)

// Media types of RFC 2585.
const (
	ContentTypeCRL  = "application/pkix-crl"
	ContentTypeCert = "application/pkix-cert"
)

// caCertMaxAge is the HTTP max-age of a CA certificate: it changes only
// when the CA is replaced, which gives it another URL.
const caCertMaxAge = 24 * time.Hour

// Routes is what NewMux serves.
type Routes struct {
	// CRLs are served at pki.CRLPath + name + ".crl", and their issuing
	// CAs' certificates at pki.CAIssuersPath + name + ".crt".
	CRLs []*Publisher
	// OCSP, if not nil, answers every request whose path is pki.OCSPPath
	// or starts with it and a slash (RFC 6960 GET puts the request
	// there), whatever the method. Its requests reach it as they came:
	// path uncleaned, so base64's "//" and "+" survive (read
	// r.URL.EscapedPath()).
	OCSP http.Handler
	// MoreOCSP are the responders of further CAs (docs/pki.md, "Several
	// CAs"), by path (pki.CA.OCSPPath: pki.OCSPPath + "/" + the CA's
	// name), served like OCSP at their own paths, which take precedence.
	MoreOCSP map[string]http.Handler
}

// NewMux is the revocation server's handler, for plain HTTP: GET or HEAD
// of a CRL (application/pkix-crl, with Last-Modified at thisUpdate, a
// strong ETag, conditional requests, and a max-age that never reaches past
// nextUpdate) or an issuing CA certificate; the OCSP responder; 405 for
// another method on a CRL or certificate, 404 for any other path.
func NewMux(r Routes) (http.Handler, error) {
	mux := http.NewServeMux()
	seen := map[string]bool{}
	for _, p := range r.CRLs {
		if p == nil || seen[p.Name()] {
			return nil, fmt.Errorf("revocation: nil or duplicate CRL publisher")
		}
		seen[p.Name()] = true
		mux.Handle("GET "+pki.CRLPath+p.Name()+".crl", crlHandler{p})
		mux.Handle("GET "+pki.CAIssuersPath+p.Name()+".crt", caCertHandler{p})
	}
	for path, h := range r.MoreOCSP {
		if h == nil || !strings.HasPrefix(path, pki.OCSPPath+"/") || strings.Contains(path[len(pki.OCSPPath)+1:], "/") {
			return nil, fmt.Errorf("revocation: OCSP responder at %q: want %s/<CA name>", path, pki.OCSPPath)
		}
	}
	return &revocationMux{mux: mux, ocsp: r.OCSP, more: r.MoreOCSP}, nil
}

type revocationMux struct {
	mux  *http.ServeMux
	ocsp http.Handler
	more map[string]http.Handler
}

func (m *revocationMux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// OCSP first and by hand: ServeMux would clean the path and redirect
	// a GET request whose base64 holds "//". A further CA's responder
	// first: its path lies under the first CA's.
	if len(m.more) > 0 && isOCSPPath(r.URL.Path) {
		rest := strings.TrimPrefix(r.URL.Path, pki.OCSPPath+"/")
		name, _, _ := strings.Cut(rest, "/")
		if h := m.more[pki.OCSPPath+"/"+name]; h != nil {
			h.ServeHTTP(w, r)
			return
		}
	}
	if m.ocsp != nil && isOCSPPath(r.URL.Path) {
		m.ocsp.ServeHTTP(w, r)
		return
	}
	m.mux.ServeHTTP(w, r)
}

func isOCSPPath(path string) bool {
	return path == pki.OCSPPath || strings.HasPrefix(path, pki.OCSPPath+"/")
}

type crlHandler struct{ p *Publisher }

func (h crlHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	crl := h.p.Current()
	if crl == nil {
		w.Header().Set("Retry-After", "10")
		http.Error(w, "the CRL is being generated", http.StatusServiceUnavailable)
		return
	}
	// A cache may keep the CRL up to nextUpdate at the most, and for no
	// more than MaxAge, so a revocation reaches relying parties soon.
	maxAge := min(crl.NextUpdate.Sub(h.p.cfg.Now()), h.p.cfg.MaxAge)
	header := w.Header()
	header.Set("Content-Type", ContentTypeCRL)
	header.Set("ETag", crl.ETag)
	header.Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int64(max(maxAge, 0)/time.Second)))
	http.ServeContent(w, r, "", crl.ThisUpdate, bytes.NewReader(crl.DER))
}

type caCertHandler struct{ p *Publisher }

func (h caCertHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	header := w.Header()
	header.Set("Content-Type", ContentTypeCert)
	header.Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int64(caCertMaxAge/time.Second)))
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(h.p.issuerDER))
}
