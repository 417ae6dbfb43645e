package allocation

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/hallmark-iot/hallmark/internal/connector/webhook"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// MaxAnswer bounds a webhook's answer: {"endpoint": "…"} with an endpoint
// of at most 2,048 bytes fits with room to spare.
const MaxAnswer = 4096

// WebhookRequest is the JSON body POSTed to a webhook policy's URL,
// signed as webhook.Sign signs the connector's events.
type WebhookRequest struct {
	Identity   string   `json:"identity"`
	Product    string   `json:"product"`
	Class      string   `json:"class"`
	Suite      string   `json:"suite"`
	Batch      string   `json:"batch"`
	Station    string   `json:"station"`
	Candidates []string `json:"candidates"`
}

// WebhookAnswer is the JSON body a webhook answers with, status 200.
type WebhookAnswer struct {
	Endpoint string `json:"endpoint"`
}

// Errors ParseAnswer returns (wrapped in ErrUnavailable by Choose).
var (
	ErrMalformedAnswer = errors.New("allocation webhook: malformed answer")
	ErrNotCandidate    = errors.New("allocation webhook: answered an endpoint not listed for the product")
)

// ask POSTs the signed request and returns the endpoint the answer names.
// Every failure is ErrUnavailable; none quotes the secret, and none quotes
// more of the answer than a short, cut prefix.
func (c *Chooser) ask(ctx context.Context, p Policy, req Request) (string, error) {
	body, err := json.Marshal(requestBody(p, req))
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	var nonce [16]byte
	rand.Read(nonce[:])
	id := "alloc_" + hex.EncodeToString(nonce[:])
	ts := c.now().Unix()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, p.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("%w: allocation webhook URL: %v", ErrUnavailable, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("User-Agent", "hallmark-allocation/1")
	hr.Header.Set(webhook.HeaderID, id)
	hr.Header.Set(webhook.HeaderTimestamp, strconv.FormatInt(ts, 10))
	hr.Header.Set(webhook.HeaderSignature, webhook.Sign(p.WebhookSecret, id, ts, body))
	resp, err := c.client.Do(hr)
	if err != nil {
		return "", fmt.Errorf("%w: allocation webhook: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%w: allocation webhook answered HTTP %d", ErrUnavailable, resp.StatusCode)
	}
	answer, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswer+1))
	if err != nil {
		return "", fmt.Errorf("%w: allocation webhook answer: %v", ErrUnavailable, err)
	}
	endpoint, err := ParseAnswer(answer, p.Endpoints)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return endpoint, nil
}

func requestBody(p Policy, req Request) WebhookRequest {
	candidates := make([]string, len(p.Endpoints))
	for i, e := range p.Endpoints {
		candidates[i] = e.URL
	}
	return WebhookRequest{Identity: req.Identity.String(), Product: req.Product, Class: req.Class,
		Suite: string(req.Suite), Batch: req.Batch, Station: req.Station.String(), Candidates: candidates}
}

// ParseAnswer reads a webhook's answer: one JSON object of at most
// MaxAnswer bytes whose endpoint is, byte for byte, one of candidates
// (an allow-list: a webhook cannot send devices to a host the
// administrator did not list). Members other than endpoint are ignored,
// so a receiver may add its own; anything after the object is refused.
func ParseAnswer(answer []byte, candidates []store.WeightedEndpoint) (string, error) {
	if len(answer) > MaxAnswer {
		return "", fmt.Errorf("%w: more than %d bytes", ErrMalformedAnswer, MaxAnswer)
	}
	dec := json.NewDecoder(bytes.NewReader(answer))
	var a struct {
		Endpoint *string `json:"endpoint"`
	}
	if err := dec.Decode(&a); err != nil {
		return "", fmt.Errorf("%w: not a JSON object: %v", ErrMalformedAnswer, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", fmt.Errorf("%w: data after the JSON object", ErrMalformedAnswer)
	}
	if a.Endpoint == nil {
		return "", fmt.Errorf("%w: no endpoint", ErrMalformedAnswer)
	}
	for _, c := range candidates {
		if c.URL == *a.Endpoint {
			return c.URL, nil
		}
	}
	return "", fmt.Errorf("%w (%q)", ErrNotCandidate, cut(*a.Endpoint, 64))
}

// cut quotes at most n bytes of an outside value, on a rune boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
