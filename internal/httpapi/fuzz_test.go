package httpapi

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// fuzzDecode checks a request decoder's properties on any input: it never
// panics; a refusal is a 400 problem of a request code; an acceptance
// comes from one valid JSON object, and the value re-encodes to a body
// that decodes to the same value and is accepted again.
func fuzzDecode[T any](t *testing.T, body []byte) {
	var v T
	err := decodeJSONBytes(body, &v)
	if err != nil {
		var p *Problem
		if !errors.As(err, &p) || p.Status != 400 || (p.Code != "malformed-request" && p.Code != "unknown-field") {
			t.Fatalf("refusal is not a 400 request problem: %v", err)
		}
		return
	}
	if !json.Valid(body) || bytes.TrimSpace(body)[0] != '{' {
		t.Fatalf("accepted %q, which is not one JSON object", body)
	}
	again, err := json.Marshal(&v)
	if err != nil {
		t.Fatal(err)
	}
	var w T
	if err := decodeJSONBytes(again, &w); err != nil {
		t.Fatalf("re-encoded %s refused: %v", again, err)
	}
	if !reflect.DeepEqual(v, w) {
		t.Fatalf("round trip changed %+v into %+v", v, w)
	}
}

func seedJSON(f *testing.F, values ...any) {
	for _, v := range values {
		data, err := json.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{``, `{}`, `null`, `[]`, `{"a":1}`, `{"name":"x","name":"y"}`, `{} {}`, `{"name":`} {
		f.Add([]byte(s))
	}
}

func FuzzDecodeStationRequest(f *testing.F) {
	for _, alg := range sigalg.Names() {
		key := deriveKey(f, sigalg.ID(alg), "fuzz", 0)
		seedJSON(f, StationRequest{Name: "line " + alg, PublicKey: stationPEM(f, key)})
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzDecode[StationRequest](t, body)
		var req StationRequest
		if decodeJSONBytes(body, &req) == nil {
			// An accepted key has exactly one canonical DER form.
			block, _ := pem.Decode([]byte(req.PublicKey))
			if block == nil {
				t.Fatal("accepted a key with no PEM block")
			}
			der := block.Bytes
			pub, err := sigalg.ParsePublicKey(der)
			if err != nil {
				t.Fatal(err)
			}
			if again, _ := sigalg.MarshalPublicKey(pub); !bytes.Equal(again, der) {
				t.Fatal("accepted a non-canonical key")
			}
		}
	})
}

func FuzzDecodeProductRequest(f *testing.F) {
	seedJSON(f,
		ProductRequest{ID: "sensor", Name: "Sensor", CertValidity: "8760h", CloudEndpoint: "mqtts://broker.example.com:8883"},
		ProductRequest{ID: "g-2", Name: "Gauge ü", CertValidity: "1h30m", CloudEndpoint: "https://[2001:db8::1]/ingest?x=1"},
		ProductRequest{ID: "w", Name: "W", CertValidity: "87600h", CloudEndpoint: "wss://w.example.com"},
	)
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzDecode[ProductRequest](t, body)
		var req ProductRequest
		if decodeJSONBytes(body, &req) == nil {
			d, err := time.ParseDuration(req.CertValidity)
			if err != nil || d < admin.MinCertValidity || d > admin.MaxCertValidity {
				t.Fatalf("accepted validity %q", req.CertValidity)
			}
			u, err := url.Parse(req.CloudEndpoint)
			if err != nil || u.Host == "" || u.User != nil || (u.Scheme != "mqtts" && u.Scheme != "https" && u.Scheme != "wss") {
				t.Fatalf("accepted endpoint %q", req.CloudEndpoint)
			}
		}
	})
}

func FuzzDecodeRevokeRequest(f *testing.F) {
	seedJSON(f, RevokeRequest{Reason: "stolen"}, RevokeRequest{Reason: strings.Repeat("é", admin.MaxRevokeReason)})
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzDecode[RevokeRequest](t, body)
	})
}

func FuzzDecodeTokenRequest(f *testing.F) {
	seedJSON(f,
		TokenRequest{Name: "ci", Scopes: []string{ScopeManifestsImport}, TTL: "720h"},
		TokenRequest{Name: "ops", Scopes: []string{ScopeDevicesRead, ScopeDevicesRevoke}},
		TokenRequest{Name: "root", Scopes: []string{ScopeAdmin}, TTL: "1m"},
	)
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzDecode[TokenRequest](t, body)
		var req TokenRequest
		if decodeJSONBytes(body, &req) == nil {
			ttl, err := admin.TokenRequest(req).Lifetime()
			if err != nil || ttl < admin.MinTokenTTL || ttl > admin.MaxTokenTTL || len(req.Scopes) == 0 {
				t.Fatalf("accepted %+v", req)
			}
		}
	})
}

// FuzzDeviceFilter drives the device list's query decoder: an accepted
// query's filter, written back as a query, reads as the same filter.
func FuzzDeviceFilter(f *testing.F) {
	for _, q := range []string{"", "state=revoked&product=sensor&limit=10", "algorithm=ml-dsa-65&after=" + strings.Repeat("0a", 32),
		"batch=a.b_c-d", "limit=1000", "limit=0", "state=x", "a=%zz", "after=ZZ"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseQuery(raw)
		if err != nil {
			return
		}
		filter, err := deviceFilter(q)
		if err != nil {
			var p *Problem
			if !errors.As(err, &p) || p.Code != "malformed-request" {
				t.Fatalf("refusal %v", err)
			}
			return
		}
		if filter.Limit < 1 || filter.Limit > maxPageLimit {
			t.Fatalf("limit %d", filter.Limit)
		}
		again, err := deviceFilter(filterQuery(filter))
		if err != nil || again != filter {
			t.Fatalf("filter %+v reads back as %+v, %v", filter, again, err)
		}
	})
}

func filterQuery(f store.DeviceFilter) url.Values {
	q := DeviceQuery{State: string(f.State), Product: f.ProductID, Batch: f.BatchID, Algorithm: string(f.Algorithm), Limit: f.Limit}
	if f.After != ([32]byte{}) {
		q.After = f.After.String()
	}
	return q.values()
}

// FuzzAuditFilter drives the audit list's query decoder.
func FuzzAuditFilter(f *testing.F) {
	for _, q := range []string{"", "actor=token:abc&action=manifest.import&after=10&limit=5", "after=-1", "after=01", "subject=device:x"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseQuery(raw)
		if err != nil {
			return
		}
		filter, err := auditFilter(q)
		if err != nil {
			return
		}
		if filter.AfterSeq < 0 || filter.Limit < 1 || filter.Limit > maxPageLimit || len(filter.Actor) > maxAuditField {
			t.Fatalf("filter %+v", filter)
		}
		if after := q.Get("after"); after != "" && strconv.FormatInt(filter.AfterSeq, 10) != after {
			t.Fatalf("after %q read as %d", after, filter.AfterSeq)
		}
	})
}

// FuzzProblemJSON drives the client's problem decoder: what it decodes
// encodes and decodes again to the same problem.
func FuzzProblemJSON(f *testing.F) {
	p := problemFor(&admin.Error{Code: admin.CodeDuplicateDevices, Message: "0 devices", Err: &admin.DuplicateDevicesError{}})
	data, _ := json.Marshal(p)
	f.Add(data)
	f.Add([]byte(`{"type":"x","title":"t","status":400,"code":"c","extra":[1,{"a":null}]}`))
	f.Add([]byte(`{"code":"c","status":1e400}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var p Problem
		if json.Unmarshal(data, &p) != nil {
			return
		}
		again, err := json.Marshal(&p)
		if err != nil {
			t.Fatal(err)
		}
		var q Problem
		if err := json.Unmarshal(again, &q); err != nil {
			t.Fatalf("%s: %v", again, err)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip %+v into %+v", p, q)
		}
	})
}
