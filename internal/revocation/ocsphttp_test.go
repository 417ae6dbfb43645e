package revocation

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// newOCSPServer serves f's responder the way the platform does: mounted
// in NewMux.
func newOCSPServer(t *testing.T, f *ocspFixture) *httptest.Server {
	t.Helper()
	h, err := NewMux(Routes{OCSP: f.responder})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func ocspDo(t *testing.T, method, rawURL, contentType string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, rawURL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, data
}

// nonceWithSlashAndPlus finds a nonce whose request's base64 holds "/" and
// "+", the characters RFC 6960 GET must URL-encode.
func nonceWithSlashAndPlus(t *testing.T, f *ocspFixture) ([]byte, string) {
	t.Helper()
	for i := range 10000 {
		nonce := []byte{byte(i >> 8), byte(i), 0xfb, 0xff}
		b64 := base64.StdEncoding.EncodeToString(f.request(t, crypto.SHA1, nonce, f.revoked))
		if strings.Contains(b64, "/") && strings.Contains(b64, "+") {
			return nonce, b64
		}
	}
	t.Fatal("no nonce gives a base64 with / and +")
	return nil, ""
}

func TestOCSPOverHTTP(t *testing.T) {
	f := newOCSPFixture(t, sigalg.ECDSAP256, nil)
	srv := newOCSPServer(t, f)
	check := func(t *testing.T, resp *http.Response, body, nonce []byte, want pki.OCSPCertStatus) {
		t.Helper()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != ContentTypeOCSPResponse {
			t.Fatalf("HTTP %d, %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		got := f.verify(t, OCSPAnswer{DER: body}, f.clock.Now(), nonce)
		if got.Responses[0].Status != want {
			t.Fatalf("status %v, want %v", got.Responses[0].Status, want)
		}
	}
	t.Run("POST", func(t *testing.T) {
		nonce := []byte("post nonce")
		for _, path := range []string{pki.OCSPPath, pki.OCSPPath + "/"} {
			resp, body := ocspDo(t, http.MethodPost, srv.URL+path, ContentTypeOCSPRequest, f.request(t, crypto.SHA1, nonce, f.revoked))
			check(t, resp, body, nonce, pki.OCSPRevoked)
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
		}
	})
	t.Run("GET with nonce", func(t *testing.T) {
		nonce, b64 := nonceWithSlashAndPlus(t, f)
		// URL-encoded, as RFC 6960 asks, and raw, as some clients send
		// it: "/" unescaped, even "//".
		for _, path := range []string{url.PathEscape(b64), strings.ReplaceAll(b64, "+", "%2B")} {
			resp, body := ocspDo(t, http.MethodGet, srv.URL+pki.OCSPPath+"/"+path, "", nil)
			check(t, resp, body, nonce, pki.OCSPRevoked)
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q for a nonce answer", cc)
			}
		}
	})
	t.Run("GET without nonce", func(t *testing.T) {
		b64 := base64.StdEncoding.EncodeToString(f.request(t, crypto.SHA256, nil, f.good))
		resp, body := ocspDo(t, http.MethodGet, srv.URL+pki.OCSPPath+"/"+url.PathEscape(b64), "", nil)
		check(t, resp, body, nil, pki.OCSPGood)
		if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=60, no-transform, must-revalidate" {
			t.Errorf("Cache-Control %q", cc)
		}
		if lm := resp.Header.Get("Last-Modified"); lm != ocspTestNow.Format(http.TimeFormat) {
			t.Errorf("Last-Modified %q", lm)
		}
	})
	t.Run("refused", func(t *testing.T) {
		req := f.request(t, crypto.SHA1, nil, f.good)
		tests := []struct {
			name, method, path, contentType string
			body                            []byte
			want                            int
		}{
			{"media type", http.MethodPost, pki.OCSPPath, "application/octet-stream", req, http.StatusUnsupportedMediaType},
			{"too large", http.MethodPost, pki.OCSPPath, ContentTypeOCSPRequest, make([]byte, pki.MaxOCSPRequestSize+1), http.StatusRequestEntityTooLarge},
			{"garbage", http.MethodPost, pki.OCSPPath, ContentTypeOCSPRequest, []byte("not DER"), http.StatusBadRequest},
			{"POST below the path", http.MethodPost, pki.OCSPPath + "/x", ContentTypeOCSPRequest, req, http.StatusBadRequest},
			{"bad base64", http.MethodGet, pki.OCSPPath + "/not*base64", "", nil, http.StatusBadRequest},
			{"GET without request", http.MethodGet, pki.OCSPPath + "/", "", nil, http.StatusBadRequest},
			{"GET too long", http.MethodGet, pki.OCSPPath + "/" + strings.Repeat("A", 20000), "", nil, http.StatusBadRequest},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				resp, body := ocspDo(t, tt.method, srv.URL+tt.path, tt.contentType, tt.body)
				if resp.StatusCode != tt.want || !bytes.Equal(body, pki.OCSPErrorResponse(pki.OCSPMalformedRequest)) {
					t.Fatalf("HTTP %d body %x, want %d and malformedRequest", resp.StatusCode, body, tt.want)
				}
			})
		}
		if resp, _ := ocspDo(t, http.MethodPut, srv.URL+pki.OCSPPath, ContentTypeOCSPRequest, req); resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("PUT: HTTP %d", resp.StatusCode)
		}
	})
	t.Run("unauthorized is HTTP 200", func(t *testing.T) {
		other := newOCSPFixture(t, sigalg.ECDSAP256, nil)
		resp, body := ocspDo(t, http.MethodPost, srv.URL+pki.OCSPPath, ContentTypeOCSPRequest, other.request(t, crypto.SHA1, nil, other.good))
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, pki.OCSPErrorResponse(pki.OCSPUnauthorized)) {
			t.Fatalf("HTTP %d body %x", resp.StatusCode, body)
		}
	})
}
