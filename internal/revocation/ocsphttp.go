package revocation

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hallmark-iot/hallmark/internal/pki"
)

// Media types of RFC 6960 appendix C.
const (
	ContentTypeOCSPRequest  = "application/ocsp-request"
	ContentTypeOCSPResponse = "application/ocsp-response"
)

// maxOCSPGetPath bounds the base64 in a GET path before decoding: the
// base64 of MaxOCSPRequestSize bytes, every character percent-encoded.
const maxOCSPGetPath = (pki.MaxOCSPRequestSize + 2) / 3 * 4 * 3

// ServeHTTP is the OCSP responder over HTTP (RFC 6960 appendix A) at its
// path P (OCSPConfig.Path, pki.OCSPPath by default): POST of a DER request
// (Content-Type application/ocsp-request, at most pki.MaxOCSPRequestSize
// bytes) to P or P + "/", or GET of P + "/" + the URL-encoded base64 of the DER request. Every answer is an
// application/ocsp-response; a GET answered from the cache carries a
// max-age up to the end of its time there. The HTTP status follows the
// OCSP one: 200 for successful and unauthorized (OpenSSL prints the OCSP
// status only for a 200), 400 for malformedRequest, 413 for a body too
// large, 415 for another media type, 500 for internalError, 503 for
// tryLater.
func (r *OCSPResponder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var der []byte
	var code int
	switch req.Method {
	case http.MethodPost:
		der, code = readOCSPPost(w, req, r.cfg.Path)
	case http.MethodGet:
		der, code = readOCSPGet(req, r.cfg.Path)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "OCSP takes GET or POST", http.StatusMethodNotAllowed)
		return
	}
	if code != http.StatusOK {
		writeOCSP(w, code, pki.OCSPErrorResponse(pki.OCSPMalformedRequest), "no-store")
		return
	}
	answer := r.Respond(req.Context(), der)
	cacheControl := "no-store"
	if req.Method == http.MethodGet && !answer.CacheUntil.IsZero() {
		maxAge := answer.CacheUntil.Sub(r.cfg.Now()) / time.Second
		// RFC 5019 §6.2: let caches keep it, but not alter it.
		cacheControl = fmt.Sprintf("public, max-age=%d, no-transform, must-revalidate", max(maxAge, 0))
		w.Header().Set("Last-Modified", answer.ThisUpdate.UTC().Format(http.TimeFormat))
	}
	writeOCSP(w, ocspHTTPStatus(answer.Status), answer.DER, cacheControl)
}

func writeOCSP(w http.ResponseWriter, code int, der []byte, cacheControl string) {
	h := w.Header()
	h.Set("Content-Type", ContentTypeOCSPResponse)
	h.Set("Content-Length", fmt.Sprint(len(der)))
	h.Set("Cache-Control", cacheControl)
	if code == http.StatusServiceUnavailable {
		h.Set("Retry-After", "10")
	}
	w.WriteHeader(code)
	_, _ = w.Write(der) // the client went away; nothing to do
}

func ocspHTTPStatus(s pki.OCSPResponseStatus) int {
	switch s {
	case pki.OCSPSuccessful, pki.OCSPUnauthorized:
		return http.StatusOK
	case pki.OCSPMalformedRequest:
		return http.StatusBadRequest
	case pki.OCSPTryLater:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func readOCSPPost(w http.ResponseWriter, req *http.Request, path string) ([]byte, int) {
	if p := req.URL.Path; p != path && p != path+"/" {
		return nil, http.StatusBadRequest
	}
	if mt, _, err := mime.ParseMediaType(req.Header.Get("Content-Type")); err != nil || mt != ContentTypeOCSPRequest {
		return nil, http.StatusUnsupportedMediaType
	}
	der, err := io.ReadAll(http.MaxBytesReader(w, req.Body, pki.MaxOCSPRequestSize))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, http.StatusRequestEntityTooLarge
	case err != nil:
		return nil, http.StatusBadRequest
	}
	return der, http.StatusOK
}

// readOCSPGet decodes the request from the escaped path: unescaping the
// whole path first would turn an encoded "/" of the base64 into a path
// separator. Padding may be left out, and the URL-safe alphabet is taken
// too, as some clients send it.
func readOCSPGet(req *http.Request, path string) ([]byte, int) {
	encoded, ok := strings.CutPrefix(req.URL.EscapedPath(), path+"/")
	if !ok || encoded == "" || len(encoded) > maxOCSPGetPath {
		return nil, http.StatusBadRequest
	}
	b64, err := url.PathUnescape(encoded)
	if err != nil {
		return nil, http.StatusBadRequest
	}
	b64 = strings.TrimRight(b64, "=")
	der, err := base64.RawStdEncoding.DecodeString(b64)
	if err != nil {
		if der, err = base64.RawURLEncoding.DecodeString(b64); err != nil {
			return nil, http.StatusBadRequest
		}
	}
	return der, http.StatusOK
}
