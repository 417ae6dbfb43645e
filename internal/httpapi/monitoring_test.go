package httpapi

import (
	"context"
	"crypto/x509"
	"os"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/monitoring"
	"github.com/hallmark-iot/hallmark/internal/store"
)

type nopMonitor struct{}

func (nopMonitor) ReportStatus(context.Context, *x509.Certificate, monitoring.StatusReport, string) (monitoring.Receipt, error) {
	return monitoring.Receipt{}, nil
}

func (nopMonitor) ListEvents(context.Context, store.EventFilter) ([]store.DeviceEvent, error) {
	return nil, nil
}

// TestMonitoringRoutesDocumented: the monitoring routes are in the OpenAPI
// document and in docs/api.md.
func TestMonitoringRoutesDocumented(t *testing.T) {
	e := newEnv(t)
	if err := e.srv.HandleOnboarding(nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.HandleMonitoring(nopMonitor{}, nil); err != nil {
		t.Fatal(err)
	}
	checkOpenAPISync(t, e.srv)
	api, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"POST " + PathDeviceStatus, "GET " + PathAdminEvents} {
		if !strings.Contains(string(api), p) {
			t.Errorf("docs/api.md does not describe %s", p)
		}
	}
}

func TestEventFilter(t *testing.T) {
	id := identity.FromSPKI([]byte("d"))
	f, err := eventFilter(map[string][]string{"kind": {"device.revoked"}, "identity": {id.String()}, "after": {"42"}, "limit": {"7"}})
	if err != nil || f != (store.EventFilter{Kind: store.EventRevoked, Identity: id, AfterSeq: 42, Limit: 7}) {
		t.Fatalf("eventFilter = %+v, %v", f, err)
	}
	for name, q := range map[string]map[string][]string{
		"unknown kind":   {"kind": {"device.pwned"}},
		"bad identity":   {"identity": {"xyz"}},
		"upper identity": {"identity": {strings.ToUpper(id.String())}},
		"negative after": {"after": {"-1"}},
		"padded after":   {"after": {"01"}},
		"limit too big":  {"limit": {"1001"}},
	} {
		if _, err := eventFilter(q); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
