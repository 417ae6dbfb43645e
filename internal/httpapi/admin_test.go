package httpapi

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"unicode"

	"github.com/hallmark-iot/hallmark/internal/store"
)

// rawRequest sends one request line as given, bytes and all, and returns
// the status.
func rawRequest(t *testing.T, e *env, method, target, auth string) int {
	t.Helper()
	conn, err := net.Dial("tcp", e.ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := method + " " + target + " HTTP/1.1\r\nHost: hallmark\r\nConnection: close\r\n"
	if auth != "" {
		req += "Authorization: Bearer " + auth + "\r\n"
	}
	if _, err := conn.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestAuditInjection: text an outsider puts in a URL, a query or a token
// never reaches the audit log as given.
func TestAuditInjection(t *testing.T) {
	e := newEnv(t)
	e.registry(t)
	forged := "abc%0a2026-12-02T10:00:00Z%20token:admin%20device.revoke%20ok%1b[2J%1b]0;owned%07%e2%80%ae%c2%9b"
	for _, tc := range []struct {
		method, target, auth string
		status               int
	}{
		{"GET", "/v1/admin/devices/" + forged, "", 401},
		{"POST", "/v1/admin/devices/" + forged + "/revoke", "", 401},
		{"DELETE", "/v1/admin/tokens/" + forged, "", 401},
		{"GET", "/v1/admin/products/" + forged, "", 401},
		{"GET", "/v1/admin/devices/" + forged, e.admin, 404},
		{"GET", "/v1/admin/products/" + forged, e.admin, 404},
		{"DELETE", "/v1/admin/tokens/" + forged, e.admin, 404},
		// A raw ";" would end the query (malformed-request, no event).
		{"POST", "/v1/admin/manifests?product=" + strings.ReplaceAll(forged, ";", "%3b"), e.admin, 415},
	} {
		if got := rawRequest(t, e, tc.method, tc.target, tc.auth); got != tc.status {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.target, got, tc.status)
		}
	}
	e.srv.Refusals().Flush(context.Background())
	events := e.audit(t, store.AuditFilter{})
	subjects := map[string]bool{}
	for _, ev := range events {
		for _, field := range []string{ev.Actor, ev.Action, ev.Subject, ev.Outcome, ev.Detail, ev.RemoteAddr} {
			if strings.ContainsFunc(field, func(r rune) bool { return r != ' ' && !unicode.IsPrint(r) }) ||
				strings.Contains(field, "device.revoke ok") || strings.Contains(field, "owned") {
				t.Errorf("audit event %d holds %q", ev.Seq, field)
			}
		}
		subjects[ev.Subject] = true
	}
	for _, want := range []string{"device:(invalid)", "token:(invalid)", "product:(invalid)"} {
		if !subjects[want] {
			t.Errorf("no event about %s: %v", want, subjects)
		}
	}
}

// TestRefusalsAggregated: anonymous refusals are counted, and written as
// the first of the interval plus one summary, however many there are.
func TestRefusalsAggregated(t *testing.T) {
	e := newEnv(t)
	before := len(e.audit(t, store.AuditFilter{}))
	for range 200 {
		e.call(t, "GET", "/v1/admin/devices", "", nil).wantProblem(t, 401, "unauthorized")
	}
	events := e.audit(t, store.AuditFilter{})[before:]
	if len(events) != 1 || events[0].Action != "device.list" || events[0].Detail != "no-token" || events[0].Actor != "anonymous" {
		t.Fatalf("before the flush: %+v", events)
	}
	e.srv.Refusals().Flush(context.Background())
	events = e.audit(t, store.AuditFilter{})[before:]
	if len(events) != 2 || events[1].Subject != "address:127.0.0.1" || !strings.HasPrefix(events[1].Detail, "no-token: 200 refused from ") {
		t.Fatalf("after the flush: %+v", events)
	}
	metrics := string(e.call(t, "GET", "/metrics", "", nil).body)
	if want := `hallmark_refused_requests_total{interface="admin",reason="no-token"} 200`; !strings.Contains(metrics, want) {
		t.Fatalf("metrics lack %s", want)
	}
	// An authenticated caller's denial stays an event of its own.
	reader := e.token(t, "reader", ScopeAuditRead)
	for range 3 {
		e.call(t, "GET", "/v1/admin/devices", reader, nil).wantProblem(t, 403, "forbidden")
	}
	if n := len(e.audit(t, store.AuditFilter{Action: "device.list"})); n != 2+3 {
		t.Fatalf("%d device.list events, want 5", n)
	}
}
