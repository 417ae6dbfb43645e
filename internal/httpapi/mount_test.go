package httpapi

import (
	"net/http"
	"strings"
	"testing"
)

// TestMount: a mounted handler serves its prefix inside the middleware
// (request ID, metrics by the handler's own pattern, panic recovery),
// takes any query, and stays out of the OpenAPI document; bad or
// clashing prefixes are refused.
func TestMount(t *testing.T) {
	e := newEnv(t)
	inner := http.NewServeMux()
	inner.HandleFunc("GET /ui/page/{id}", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("page " + r.PathValue("id"))) })
	inner.HandleFunc("GET /ui/boom", func(http.ResponseWriter, *http.Request) { panic("boom") })
	if err := e.srv.Mount("/ui/", inner); err != nil {
		t.Fatal(err)
	}
	r := e.call(t, "GET", "/ui/page/7?anything=goes&anything=twice", "", nil)
	if r.status != 200 || string(r.body) != "page 7" || r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("mounted page: %d %q", r.status, r.body)
	}
	if m := e.call(t, "GET", "/metrics", "", nil); !strings.Contains(string(m.body), `hallmark_http_requests_total{code="200",route="GET /ui/page/{id}"} 1`) {
		t.Error("the mounted page is not counted under its own pattern")
	}
	if r := e.call(t, "GET", "/ui/boom", "", nil); r.status != http.StatusInternalServerError {
		t.Errorf("a panic under the mount: %d", r.status)
	}
	if r := e.call(t, "GET", "/openapi.json", "", nil); strings.Contains(string(r.body), "/ui/") {
		t.Error("the mount is in the OpenAPI document")
	}
	for _, prefix := range []string{"/ui/", "ui/", "/ui", "/", "/v1/", "/v1/admin/", "/UI/"} {
		if err := e.srv.Mount(prefix, inner); err == nil {
			t.Errorf("Mount(%q) accepted", prefix)
		}
	}
	if err := e.srv.Mount("/other/", nil); err == nil {
		t.Error("Mount of a nil handler accepted")
	}
}
