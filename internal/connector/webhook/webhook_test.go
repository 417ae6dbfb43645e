package webhook

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/identity"
)

var secret = []byte("0123456789abcdef-test-secret")

func TestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"type":"device.registered"}`)
	good := func() http.Header {
		h := http.Header{}
		h.Set(HeaderID, "evt_1")
		h.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		h.Set(HeaderSignature, Sign(secret, "evt_1", now.Unix(), body))
		return h
	}
	with := func(key, value string) http.Header {
		h := good()
		h.Set(key, value)
		return h
	}
	for _, c := range []struct {
		name    string
		secret  []byte
		h       http.Header
		body    []byte
		now     time.Time
		wantErr error
	}{
		{"valid", secret, good(), body, now, nil},
		{"valid at tolerance", secret, good(), body, now.Add(DefaultTolerance), nil},
		{"rotated: second signature valid", secret, with(HeaderSignature, "v1,AAAA "+Sign(secret, "evt_1", now.Unix(), body)), body, now, nil},
		{"too old", secret, good(), body, now.Add(DefaultTolerance + time.Second), ErrTimestamp},
		{"from the future", secret, good(), body, now.Add(-DefaultTolerance - time.Second), ErrTimestamp},
		{"wrong secret", []byte("another-secret-of-16+"), good(), body, now, ErrInvalidSignature},
		{"body changed", secret, good(), []byte(`{"type":"device.deregistered"}`), now, ErrInvalidSignature},
		{"id changed", secret, with(HeaderID, "evt_2"), body, now, ErrInvalidSignature},
		{"timestamp changed", secret, with(HeaderTimestamp, strconv.FormatInt(now.Unix()+1, 10)), body, now, ErrInvalidSignature},
		{"timestamp not canonical", secret, with(HeaderTimestamp, "+"+strconv.FormatInt(now.Unix(), 10)), body, now, ErrTimestamp},
		{"other version", secret, with(HeaderSignature, "v2"+Sign(secret, "evt_1", now.Unix(), body)[2:]), body, now, ErrInvalidSignature},
		{"no signature", secret, with(HeaderSignature, ""), body, now, ErrMissingHeader},
		{"no id", secret, with(HeaderID, ""), body, now, ErrMissingHeader},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := Verify(c.secret, c.h, c.body, c.now, 0)
			if !errors.Is(err, c.wantErr) || (c.wantErr == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, c.wantErr)
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	f.Add("evt_1", "1800000000", Sign(secret, "evt_1", now.Unix(), []byte("{}")), []byte("{}"))
	f.Add("evt_1", "1800000000", "v1,!!! v1,", []byte(""))
	f.Add("", "-1", "v1", []byte("x"))
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set(HeaderID, id)
		h.Set(HeaderTimestamp, ts)
		h.Set(HeaderSignature, sig)
		err := Verify(secret, h, body, now, 0)
		if err == nil {
			// Accepted only with a signature Sign would make for these
			// exact inputs (an HMAC forgery is out of reach of a fuzzer).
			if _, perr := strconv.ParseInt(h.Get(HeaderTimestamp), 10, 64); perr != nil {
				t.Fatalf("accepted malformed timestamp %q", ts)
			}
			if Verify(secret, h, append(body, 'x'), now, 0) == nil {
				t.Fatalf("signature valid for two bodies")
			}
		}
		// Round trip: what Sign makes, Verify accepts, for any id and body
		// that fit in a header.
		if id == "" || len(id) > maxIDSize || !validHeaderValue(id) {
			return
		}
		h.Set(HeaderTimestamp, "1800000000")
		h.Set(HeaderSignature, Sign(secret, h.Get(HeaderID), now.Unix(), body))
		if err := Verify(secret, h, body, now, 0); err != nil {
			t.Fatalf("Verify(Sign(...)) = %v", err)
		}
	})
}

// validHeaderValue reports whether Header.Get returns s unchanged.
func validHeaderValue(s string) bool {
	h := http.Header{}
	h.Set("X", s)
	return h.Get("X") == s
}

func TestNewChecksConfig(t *testing.T) {
	for _, c := range []struct {
		url    string
		secret []byte
		ok     bool
	}{
		{"https://hooks.example.com/hallmark", secret, true},
		{"http://127.0.0.1:8080/hook", secret, true},
		{"http://[::1]/hook", secret, true},
		{"http://localhost/hook", secret, true},
		{"http://hooks.example.com/hook", secret, false},
		{"ftp://hooks.example.com/hook", secret, false},
		{"https://user:pw@hooks.example.com/", secret, false},
		{"https:///nohost", secret, false},
		{"https://hooks.example.com/", []byte("short"), false},
	} {
		t.Run(c.url, func(t *testing.T) {
			_, err := New(Config{URL: c.url, Secret: c.secret})
			if (err == nil) != c.ok {
				t.Fatalf("New(%q) = %v, want ok=%v", c.url, err, c.ok)
			}
		})
	}
}

// receiver is a webhook endpoint that verifies what it gets.
type receiver struct {
	mu       sync.Mutex
	statuses []int // answered in turn; then 200
	events   []string
	ids      []string
	err      error
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := Verify(secret, req.Header, body, time.Now(), 0); err != nil {
		r.err = err
	}
	r.events = append(r.events, string(body))
	r.ids = append(r.ids, req.Header.Get(HeaderID))
	status := http.StatusOK
	if len(r.statuses) > 0 {
		status, r.statuses = r.statuses[0], r.statuses[1:]
	}
	w.WriteHeader(status)
}

func TestConnectorStatuses(t *testing.T) {
	d := connector.Device{Identity: identity.ID{1}, ProductID: "p", CloudEndpoint: "mqtts://b:8883", Certificate: []byte{0x30, 1, 2}}
	for _, c := range []struct {
		status    int
		wantErr   bool
		permanent bool
	}{
		{200, false, false}, {204, false, false},
		{500, true, false}, {503, true, false}, {408, true, false}, {429, true, false},
		{400, true, true}, {401, true, true}, {404, true, true}, {302, true, true},
	} {
		t.Run(strconv.Itoa(c.status), func(t *testing.T) {
			rec := &receiver{statuses: []int{c.status}}
			srv := httptest.NewServer(rec)
			defer srv.Close()
			conn, err := New(Config{URL: srv.URL, Secret: secret})
			if err != nil {
				t.Fatal(err)
			}
			err = conn.Register(t.Context(), d)
			if (err != nil) != c.wantErr || errors.Is(err, connector.ErrPermanent) != c.permanent {
				t.Fatalf("Register with %d = %v, want error %v permanent %v", c.status, err, c.wantErr, c.permanent)
			}
			if rec.err != nil || len(rec.events) != 1 {
				t.Fatalf("receiver: %d events, verify error %v", len(rec.events), rec.err)
			}
		})
	}
}

func TestEventIDs(t *testing.T) {
	rec := &receiver{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	conn, err := New(Config{URL: srv.URL, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	other, err := New(Config{Name: "webhook-2", URL: srv.URL, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	d := connector.Device{Identity: identity.ID{1}, Certificate: []byte("cert-1")}
	renewed := d
	renewed.Certificate = []byte("cert-2")
	for _, step := range []func() error{
		func() error { return conn.Register(ctx, d) },
		func() error { return conn.Register(ctx, d) },       // redelivery: same ID
		func() error { return conn.Register(ctx, renewed) }, // renewal: new ID
		func() error { return other.Register(ctx, d) },      // other connector: new ID
		func() error { return conn.Deregister(ctx, d.Identity) },
		func() error { return conn.Deregister(ctx, d.Identity) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	ids := rec.ids
	if rec.err != nil || ids[0] != ids[1] || ids[4] != ids[5] || ids[2] == ids[0] || ids[3] == ids[0] || ids[4] == ids[0] {
		t.Fatalf("event IDs %v (verify error %v)", ids, rec.err)
	}
}

func TestNetworkErrorIsRetryable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	conn, err := New(Config{URL: url, Secret: secret, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = conn.Deregister(context.Background(), identity.ID{1})
	if err == nil || errors.Is(err, connector.ErrPermanent) || strings.Contains(err.Error(), url) {
		t.Fatalf("Deregister to a closed server = %v, want a retryable error not naming the URL", err)
	}
}
