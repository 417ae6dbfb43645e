package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Headers of a signed request, as Standard Webhooks names them.
const (
	HeaderID        = "Webhook-Id"
	HeaderTimestamp = "Webhook-Timestamp"
	HeaderSignature = "Webhook-Signature"
)

// DefaultTolerance is how far a request's timestamp may be from the
// receiver's clock: it bounds how long a captured request can be replayed.
const DefaultTolerance = 5 * time.Minute

// Errors Verify returns.
var (
	ErrMissingHeader    = errors.New("webhook: missing or oversized signature header")
	ErrTimestamp        = errors.New("webhook: timestamp outside tolerance")
	ErrInvalidSignature = errors.New("webhook: no valid signature")
)

// Limits on the headers Verify reads, so a hostile request costs little.
const (
	maxIDSize        = 256
	maxSignatureSize = 4096
)

// Sign returns the Webhook-Signature value for a request: "v1," and the
// base64 HMAC-SHA256 under secret of id, timestamp and body joined by dots.
func Sign(secret []byte, id string, timestamp int64, body []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(mac(secret, id, timestamp, body))
}

func mac(secret []byte, id string, timestamp int64, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write(strconv.AppendInt(nil, timestamp, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a received request: its timestamp within tolerance of now
// (DefaultTolerance if zero) and one of the space-separated signatures in
// Webhook-Signature valid for secret, compared in constant time. The
// caller bounds the body's size before reading it.
func Verify(secret []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	id, tsText, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || len(id) > maxIDSize || tsText == "" || len(tsText) > 20 || sigs == "" || len(sigs) > maxSignatureSize {
		return ErrMissingHeader
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil || strconv.FormatInt(ts, 10) != tsText {
		return fmt.Errorf("%w: malformed timestamp", ErrTimestamp)
	}
	sent := time.Unix(ts, 0)
	if sent.Before(now.Add(-tolerance)) || sent.After(now.Add(tolerance)) {
		return ErrTimestamp
	}
	want := mac(secret, id, ts, body)
	valid := false
	for sig := range strings.FieldsSeq(sigs) {
		version, encoded, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.Strict().DecodeString(encoded)
		if err == nil && hmac.Equal(got, want) {
			valid = true
		}
	}
	if !valid {
		return ErrInvalidSignature
	}
	return nil
}
