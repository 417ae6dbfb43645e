package cmp

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
)

// ContentType is CMP's media type over HTTP (RFC 6712 section 3.4).
const ContentType = "application/pkixcmp"

// Paths of the door (RFC 9811's well-known URI; under a product label
// after /p/, a device of another product is refused).
const (
	Path      = "/.well-known/cmp"
	LabelPath = "/.well-known/cmp/p/{label}"
)

// HTTPHandler is the RFC 6712 transfer: a DER PKIMessage POSTed as
// application/pkixcmp, at most MaxMessage bytes, answered with one DER
// PKIMessage. Refusals of the message itself are CMP error messages with
// status 200 (what CMP clients print); only what is not a CMP message at
// all is an HTTP error. source maps a request to the client address the
// platform's rate limits and audit use.
func (s *Server) HTTPHandler(source func(*http.Request) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != ContentType {
			http.Error(w, fmt.Sprintf("send a DER PKIMessage as %s", ContentType), http.StatusUnsupportedMediaType)
			return
		}
		if r.ContentLength > MaxMessage {
			http.Error(w, fmt.Sprintf("a CMP message is at most %d bytes", MaxMessage), http.StatusRequestEntityTooLarge)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxMessage))
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			http.Error(w, fmt.Sprintf("a CMP message is at most %d bytes", MaxMessage), http.StatusRequestEntityTooLarge)
			return
		case err != nil:
			http.Error(w, "could not read the request body", http.StatusBadRequest)
			return
		}
		resp, err := s.Handle(r.Context(), body, Origin{Addr: source(r), Label: r.PathValue("label")})
		if err != nil {
			s.cfg.Log.Error("cmp response", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", ContentType)
		w.Write(resp)
	})
}
