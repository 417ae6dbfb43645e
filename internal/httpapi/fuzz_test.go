package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"

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
			der, err := parseStationKey(req.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
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
			d, err := parseCertValidity(req.CertValidity)
			if err != nil || d < minCertValidity || d > maxCertValidity {
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
	seedJSON(f, RevokeRequest{Reason: "stolen"}, RevokeRequest{Reason: strings.Repeat("é", maxReason)})
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
			ttl, err := req.ttl()
			if err != nil || ttl < minTokenTTL || ttl > maxTokenTTL || len(req.Scopes) == 0 {
				t.Fatalf("accepted %+v", req)
			}
		}
	})
}

// FuzzPeekStation drives the manifest upload's header peek: it never
// panics, never consumes input, and accepts only a first line naming a
// well-formed identity.
func FuzzPeekStation(f *testing.F) {
	station := deriveKey(f, sigalg.Ed25519, "station", 0)
	f.Add(writeManifest(f, station, "seed", devices(f, sigalg.Ed25519, "seed", 2)))
	f.Add([]byte(`{"station":"` + strings.Repeat("0", 64) + `"}` + "\n"))
	f.Add([]byte("{}\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(data), 16<<10)
		id, err := peekStation(br)
		rest, _ := br.Peek(len(data))
		if len(data) <= 16<<10 && !bytes.Equal(rest, data) {
			t.Fatal("peek consumed input")
		}
		if err != nil {
			var p *Problem
			if !errors.As(err, &p) || p.Code != "manifest-invalid" {
				t.Fatalf("refusal %v", err)
			}
			return
		}
		line, _, _ := bytes.Cut(data, []byte("\n"))
		if !bytes.Contains(line, []byte(id.String())) && !bytes.Contains(bytes.ToLower(line), []byte(`\u`)) {
			t.Fatalf("station %s not in the first line %q", id, line)
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

// FuzzParseBearer drives the Authorization token parser: what it accepts
// has the documented shape, and every token NewToken makes is accepted.
func FuzzParseBearer(f *testing.F) {
	good, _ := NewToken("seed", nil, 0)
	for _, s := range []string{good, "hm_abcdefgh_" + strings.Repeat("A", 43), "hm_", "", "hm_abc_def", good + "=", strings.ToUpper(good)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		id, _, ok := parseBearer(token)
		if !ok {
			return
		}
		if !strings.HasPrefix(token, "hm_"+id+"_") || !tokenIDPattern.MatchString(id) || len(token) != len("hm_"+id+"_")+43 {
			t.Fatalf("accepted %q", token)
		}
	})
}

// FuzzProblemJSON drives the client's problem decoder: what it decodes
// encodes and decodes again to the same problem.
func FuzzProblemJSON(f *testing.F) {
	p := duplicatesProblem(nil)
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
