package allocation

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/connector/webhook"
	"github.com/hallmark-iot/hallmark/internal/store"
)

var secret = []byte("0123456789abcdef-allocation-test")

// receiver is a customer's allocation service: it verifies the signature
// with the webhook package's Verify, as a customer would, and answers
// what answer returns.
func receiver(t *testing.T, answer func(WebhookRequest) (int, string)) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if err := webhook.Verify(secret, r.Header, body, time.Now(), 0); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var req WebhookRequest
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		status, text := answer(req)
		w.WriteHeader(status)
		io.WriteString(w, text)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func hookProduct(url string) store.Product {
	return store.Product{ID: "hooked", CloudEndpoint: weighted[0].URL, Allocation: store.Allocation{Kind: store.AllocationWebhook,
		Endpoints: weighted, WebhookURL: url, WebhookSecret: secret}}
}

func chooser(srv *httptest.Server, timeout time.Duration) *Chooser {
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return New(Config{Client: client, Timeout: timeout})
}

func TestWebhookChooses(t *testing.T) {
	var got WebhookRequest
	srv, _ := receiver(t, func(r WebhookRequest) (int, string) {
		got = r
		return 200, `{"endpoint":"` + weighted[2].URL + `","note":"rack 7"}`
	})
	id := ids(1)[0]
	endpoint, err := chooser(srv, time.Second).Choose(t.Context(), hookProduct(srv.URL),
		Request{Identity: id, Product: "hooked", Class: "puf", Suite: "ml-dsa-65", Batch: "b-1", Station: id})
	if err != nil || endpoint != weighted[2].URL {
		t.Fatalf("Choose: %q, %v", endpoint, err)
	}
	want := WebhookRequest{Identity: id.String(), Product: "hooked", Class: "puf", Suite: "ml-dsa-65", Batch: "b-1", Station: id.String(),
		Candidates: []string{weighted[0].URL, weighted[1].URL, weighted[2].URL}}
	if g, _ := json.Marshal(got); string(g) != string(must(json.Marshal(want))) {
		t.Fatalf("webhook received %s, want %s", g, must(json.Marshal(want)))
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// Every way a webhook can fail refuses for now: ErrUnavailable, and the
// answer quoted at most in part.
func TestWebhookRefusals(t *testing.T) {
	for name, c := range map[string]struct {
		status int
		body   string
		want   error
	}{
		"not a candidate": {200, `{"endpoint":"mqtts://attacker.example.net:8883"}`, ErrNotCandidate},
		"garbage":         {200, `<html>oops</html>`, ErrMalformedAnswer},
		"no endpoint":     {200, `{"host":"a"}`, ErrMalformedAnswer},
		"trailing data":   {200, `{"endpoint":"` + weighted[0].URL + `"} {}`, ErrMalformedAnswer},
		"oversized":       {200, `{"endpoint":"` + weighted[0].URL + `","pad":"` + strings.Repeat("x", MaxAnswer) + `"}`, ErrMalformedAnswer},
		"server error":    {500, `{"endpoint":"` + weighted[0].URL + `"}`, nil},
		"redirect":        {302, ``, nil},
	} {
		t.Run(name, func(t *testing.T) {
			srv, _ := receiver(t, func(WebhookRequest) (int, string) { return c.status, c.body })
			_, err := chooser(srv, time.Second).Choose(t.Context(), hookProduct(srv.URL), Request{Identity: ids(1)[0]})
			if !errors.Is(err, ErrUnavailable) || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("Choose: %v, want ErrUnavailable and %v", err, c.want)
			}
			if strings.Contains(err.Error(), string(secret)) || len(err.Error()) > 300 {
				t.Fatalf("error too long or quoting the secret: %v", err)
			}
		})
	}
}

func TestWebhookTimeout(t *testing.T) {
	release := make(chan struct{})
	srv, _ := receiver(t, func(WebhookRequest) (int, string) {
		<-release
		return 200, `{"endpoint":"` + weighted[0].URL + `"}`
	})
	defer close(release)
	start := time.Now()
	_, err := chooser(srv, 100*time.Millisecond).Choose(t.Context(), hookProduct(srv.URL), Request{Identity: ids(1)[0]})
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow webhook: %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("a 100ms timeout took %v", took)
	}
}

// A receiver holding another secret (or a request forged without one)
// is refused by Verify: the receiver knows the request is the platform's.
func TestWebhookForgedSignature(t *testing.T) {
	srv, calls := receiver(t, func(WebhookRequest) (int, string) { return 200, `{"endpoint":"` + weighted[0].URL + `"}` })
	p := hookProduct(srv.URL)
	p.Allocation.WebhookSecret = []byte("another-secret-of-enough-bytes!!")
	_, err := chooser(srv, time.Second).Choose(t.Context(), p, Request{Identity: ids(1)[0]})
	if !errors.Is(err, ErrUnavailable) || calls.Load() != 1 {
		t.Fatalf("a request signed with another secret: %v (calls %d)", err, calls.Load())
	}
	body := []byte(`{"identity":"x"}`)
	h := http.Header{}
	h.Set(webhook.HeaderID, "alloc_forged")
	h.Set(webhook.HeaderTimestamp, "1700000000")
	h.Set(webhook.HeaderSignature, webhook.Sign([]byte("guessed-secret-guessed-secret!!"), "alloc_forged", 1700000000, body))
	if err := webhook.Verify(secret, h, body, time.Unix(1700000000, 0), 0); !errors.Is(err, webhook.ErrInvalidSignature) {
		t.Fatalf("forged signature: %v", err)
	}
	h.Set(webhook.HeaderSignature, webhook.Sign(secret, "alloc_forged", 1700000000, body))
	if err := webhook.Verify(secret, h, []byte(`{"identity":"y"}`), time.Unix(1700000000, 0), 0); !errors.Is(err, webhook.ErrInvalidSignature) {
		t.Fatalf("signature over another body: %v", err)
	}
}

// Static and hash policies never call out; a malformed policy is refused.
func TestChooseKinds(t *testing.T) {
	c := New(Config{})
	id := ids(1)[0]
	got, err := c.Choose(t.Context(), store.Product{CloudEndpoint: "mqtts://only.example.com"}, Request{Identity: id})
	if err != nil || got != "mqtts://only.example.com" {
		t.Fatalf("static: %q, %v", got, err)
	}
	p := store.Product{CloudEndpoint: weighted[0].URL, Allocation: store.Allocation{Kind: store.AllocationHash, Endpoints: weighted}}
	if got, err = c.Choose(t.Context(), p, Request{Identity: id}); err != nil || got != Rendezvous(id, weighted) {
		t.Fatalf("hash: %q, %v", got, err)
	}
	p.Allocation.Kind = "random"
	if _, err = c.Choose(t.Context(), p, Request{Identity: id}); !errors.Is(err, store.ErrBadAllocation) {
		t.Fatalf("malformed: %v", err)
	}
}

func FuzzParseAnswer(f *testing.F) {
	for _, s := range []string{`{"endpoint":"mqtts://a.example.com:8883"}`, `{"endpoint":"mqtts://evil"}`, `{}`, `null`, `[]`,
		`{"endpoint":null}`, `{"endpoint":"mqtts://a.example.com:8883"} x`, `{"endpoint":1}`, "\xff", `{"endpoint":"mqtts://a.example.com:8883\u0000"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, answer []byte) {
		got, err := ParseAnswer(answer, weighted)
		if err != nil {
			if got != "" || !errors.Is(err, ErrMalformedAnswer) && !errors.Is(err, ErrNotCandidate) {
				t.Fatalf("ParseAnswer: %q with %v", got, err)
			}
			return
		}
		listed := false
		for _, e := range weighted {
			listed = listed || e.URL == got
		}
		if !listed || len(answer) > MaxAnswer {
			t.Fatalf("ParseAnswer accepted %q from %d bytes", got, len(answer))
		}
	})
}
