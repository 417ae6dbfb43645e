package httpapi

import (
	"context"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/store"
)

func TestStrictDecodingChangesNothing(t *testing.T) {
	e := newEnv(t)
	key := stationPEM(t, deriveKey(t, "ed25519", "decode", 0))
	good := `{"name":"line 1","public_key":` + jsonString(key) + `}`
	for _, tc := range []struct {
		name, body, contentType string
		status                  int
		code                    string
	}{
		{"unknown field", `{"name":"line 1","public_key":` + jsonString(key) + `,"admin":true}`, "application/json", 400, "unknown-field"},
		{"other case", `{"NAME":"line 1","public_key":` + jsonString(key) + `}`, "application/json", 400, "unknown-field"},
		{"repeated member", `{"name":"a","name":"b","public_key":` + jsonString(key) + `}`, "application/json", 400, "malformed-request"},
		{"trailing data", good + `{}`, "application/json", 400, "malformed-request"},
		{"trailing garbage", good + ` x`, "application/json", 400, "malformed-request"},
		{"two values", good + "\n" + good, "application/json", 400, "malformed-request"},
		{"bad JSON", `{"name":"line 1",`, "application/json", 400, "malformed-request"},
		{"not an object", `["line 1"]`, "application/json", 400, "malformed-request"},
		{"null", `null`, "application/json", 400, "malformed-request"},
		{"wrong type", `{"name":1,"public_key":` + jsonString(key) + `}`, "application/json", 400, "malformed-request"},
		{"empty", ``, "application/json", 400, "malformed-request"},
		{"too large", `{"name":"` + strings.Repeat("a", MaxJSONBody) + `"}`, "application/json", 413, "body-too-large"},
		{"wrong content type", good, "text/plain", 415, "unsupported-media-type"},
		{"no content type", good, "", 415, "unsupported-media-type"},
		{"odd charset", good, "application/json; charset=latin1", 415, "unsupported-media-type"},
		{"bad key", `{"name":"line 1","public_key":"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}`, "application/json", 400, "malformed-request"},
		{"control character", `{"name":"line\u0007","public_key":` + jsonString(key) + `}`, "application/json", 400, "malformed-request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.audit(t, store.AuditFilter{}))
			r := e.call(t, "POST", "/v1/admin/stations", e.admin, tc.body, tc.contentType)
			r.wantProblem(t, tc.status, tc.code)
			stations, err := e.store.ListStations(context.Background())
			if err != nil || len(stations) != 0 {
				t.Fatalf("stations %v, %v", stations, err)
			}
			events := e.audit(t, store.AuditFilter{})
			if len(events) != before+1 || events[len(events)-1].Outcome != "error" || !strings.HasPrefix(events[len(events)-1].Detail, tc.code) {
				t.Fatalf("audit: %+v", events[len(events)-1])
			}
		})
	}
	e.call(t, "POST", "/v1/admin/stations", e.admin, good, "application/json; charset=utf-8").decode(t, 201, &Station{})
}

func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '\n':
			b.WriteString(`\n`)
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func TestDecodeJSONBytes(t *testing.T) {
	for _, tc := range []struct {
		body string
		ok   bool
	}{
		{`{"reason":"lost"}`, true},
		{" \n{\"reason\":\"lost\"}\n ", true},
		{`{"reason":"lost","x":{"a":1,"a":2}}`, false},
		{`{"reason":"lost"}]`, false},
		{`{"reason":"lost"} {"reason":"lost"}`, false},
		{`{"Reason":"lost"}`, false},
		{`{"reason":""}`, false},
		{`{"reason":"` + strings.Repeat("x", admin.MaxRevokeReason+1) + `"}`, false},
		{`{"reason":"ok\u2028"}`, false},
		{`{"reason":"\ud800"}`, true}, // replaced by U+FFFD, printable
		{"{\"reason\":\"a\xffb\"}", true},
	} {
		var req RevokeRequest
		err := decodeJSONBytes([]byte(tc.body), &req)
		if (err == nil) != tc.ok {
			t.Errorf("%q: error %v, want ok %v", tc.body, err, tc.ok)
		}
	}
}
