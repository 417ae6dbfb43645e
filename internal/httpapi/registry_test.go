package httpapi

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

func TestStations(t *testing.T) {
	e := newEnv(t)
	for _, alg := range sigalg.Names() {
		t.Run(alg, func(t *testing.T) {
			key := deriveKey(t, sigalg.ID(alg), "station", 1)
			want, _ := identity.FromPublicKey(key.Public())
			var st Station
			e.call(t, "POST", "/v1/admin/stations", e.admin, StationRequest{Name: "line " + alg, PublicKey: stationPEM(t, key)}).decode(t, 201, &st)
			if st.ID != want || st.Algorithm != alg || st.PublicKey != stationPEM(t, key) || !st.CreatedAt.Equal(testStart) {
				t.Fatalf("station %+v", st)
			}
			// The same key again is a conflict, whatever the name.
			e.call(t, "POST", "/v1/admin/stations", e.admin, StationRequest{Name: "again", PublicKey: stationPEM(t, key)}).
				wantProblem(t, 409, "conflict")
			if ev := e.lastAudit(t); ev.Subject != "station:"+want.String() || ev.Outcome != "error" {
				t.Fatalf("audit %+v", ev)
			}
		})
	}
	var list StationList
	e.call(t, "GET", "/v1/admin/stations", e.admin, nil).decode(t, 200, &list)
	if len(list.Stations) != len(sigalg.Names()) {
		t.Fatalf("%d stations", len(list.Stations))
	}

	t.Run("private key refused", func(t *testing.T) {
		key := deriveKey(t, sigalg.Ed25519, "leaked", 0)
		priv, _ := sigalg.EncodePrivateKeyPEM(key)
		r := e.call(t, "POST", "/v1/admin/stations", e.admin, StationRequest{Name: "x", PublicKey: string(priv)})
		p := r.wantProblem(t, 400, "malformed-request")
		if !strings.Contains(p.Detail, "private key") || strings.Contains(string(r.body), "PRIVATE") {
			t.Fatalf("problem %+v", p)
		}
	})
	t.Run("two blocks refused", func(t *testing.T) {
		pem := stationPEM(t, deriveKey(t, sigalg.Ed25519, "two", 0))
		e.call(t, "POST", "/v1/admin/stations", e.admin, StationRequest{Name: "x", PublicKey: pem + pem}).wantProblem(t, 400, "malformed-request")
	})
}

func TestProducts(t *testing.T) {
	e := newEnv(t)
	good := ProductRequest{ID: "sensor-v2", Name: "Sensor v2", CertValidity: "8760h", CloudEndpoint: "mqtts://broker.example.com:8883"}
	var p Product
	e.call(t, "POST", "/v1/admin/products", e.admin, good).decode(t, 201, &p)
	if p.ID != good.ID || p.CertValidity != "8760h" || p.CloudEndpoint != good.CloudEndpoint {
		t.Fatalf("product %+v", p)
	}
	e.call(t, "POST", "/v1/admin/products", e.admin, good).wantProblem(t, 409, "conflict")
	var got Product
	e.call(t, "GET", "/v1/admin/products/sensor-v2", e.admin, nil).decode(t, 200, &got)
	if !reflect.DeepEqual(got, p) {
		t.Fatalf("get %+v, created %+v", got, p)
	}
	e.call(t, "GET", "/v1/admin/products/nope", e.admin, nil).wantProblem(t, 404, "not-found")
	e.call(t, "GET", "/v1/admin/products/NOT%20A%20SLUG", e.admin, nil).wantProblem(t, 404, "not-found")

	for name, mutate := range map[string]func(*ProductRequest){
		"id with capitals":     func(r *ProductRequest) { r.ID = "Sensor" },
		"id too long":          func(r *ProductRequest) { r.ID = strings.Repeat("a", 64) },
		"validity too short":   func(r *ProductRequest) { r.CertValidity = "59m" },
		"validity too long":    func(r *ProductRequest) { r.CertValidity = "87601h" },
		"validity not Go":      func(r *ProductRequest) { r.CertValidity = "1 year" },
		"http endpoint":        func(r *ProductRequest) { r.CloudEndpoint = "http://broker.example.com" },
		"mqtt endpoint":        func(r *ProductRequest) { r.CloudEndpoint = "mqtt://broker.example.com:1883" },
		"no host":              func(r *ProductRequest) { r.CloudEndpoint = "https:///path" },
		"user info":            func(r *ProductRequest) { r.CloudEndpoint = "wss://user:pass@broker.example.com" },
		"fragment":             func(r *ProductRequest) { r.CloudEndpoint = "https://broker.example.com/#x" },
		"relative":             func(r *ProductRequest) { r.CloudEndpoint = "broker.example.com:8883" },
		"empty name":           func(r *ProductRequest) { r.Name = "" },
		"newline in the name":  func(r *ProductRequest) { r.Name = "a\nb" },
		"non-canonical URL":    func(r *ProductRequest) { r.CloudEndpoint = "HTTPS://broker.example.com" },
		"opaque":               func(r *ProductRequest) { r.CloudEndpoint = "mqtts:broker.example.com" },
		"empty endpoint":       func(r *ProductRequest) { r.CloudEndpoint = "" },
		"space in the URL":     func(r *ProductRequest) { r.CloudEndpoint = "https://broker example.com" },
		"validity zero":        func(r *ProductRequest) { r.CertValidity = "0s" },
		"validity negative":    func(r *ProductRequest) { r.CertValidity = "-8760h" },
		"validity overflowing": func(r *ProductRequest) { r.CertValidity = "9999999999999h" },
	} {
		t.Run(name, func(t *testing.T) {
			req := good
			req.ID = "other"
			mutate(&req)
			e.call(t, "POST", "/v1/admin/products", e.admin, req).wantProblem(t, 400, "malformed-request")
		})
	}
	for i, ok := range []string{"https://api.example.com/v1/ingest", "wss://[2001:db8::1]:443", "mqtts://10.0.0.1:8883"} {
		req := good
		req.ID, req.CloudEndpoint = "ok-"+strconv.Itoa(i), ok
		e.call(t, "POST", "/v1/admin/products", e.admin, req).decode(t, 201, &Product{})
	}
	var list ProductList
	e.call(t, "GET", "/v1/admin/products", e.admin, nil).decode(t, 200, &list)
	if len(list.Products) != 4 {
		t.Fatalf("%d products", len(list.Products))
	}
	outcomes := map[string]int{}
	for _, ev := range e.audit(t, store.AuditFilter{Action: "product.create"}) {
		outcomes[ev.Outcome]++
	}
	if outcomes["ok"] != 4 || outcomes["error"] != 21 {
		t.Fatalf("product.create outcomes %v", outcomes)
	}
}

func TestFormatDuration(t *testing.T) {
	for in, want := range map[string]string{"8760h": "8760h", "1h30m": "1h30m", "90m": "1h30m", "1h0m30s": "1h0m30s", "2h": "2h"} {
		d, err := time.ParseDuration(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%s) = %s, want %s", in, got, want)
		}
	}
}
