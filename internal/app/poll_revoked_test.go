package app

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/ota"
)

// A device the platform no longer trusts polls for an update with the
// certificate it still holds, as an attacker with a stolen or retired
// device would (docs/ota.md, "Polling"): no campaign targets it, so the
// poll would be answered from memory, but its certificate is on the
// in-memory list of revoked and held serials, so it is authenticated and
// refused as on every device route, 403 problem+json with the device's
// standing, and the refusal audited. A device in good standing still
// gets its 204 from memory; a suspended device resumed is answered again.

// pollProblem polls as device i and returns the status and problem code.
func pollProblem(t *testing.T, e *campaignEnv, i int) (int, string) {
	t.Helper()
	resp, err := tlsClient(e.p, e.certs[i]).Get(e.p.URL() + ota.PathUpdate)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode < 400 {
		return resp.StatusCode, ""
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("refused poll: Content-Type %q, want application/problem+json", ct)
	}
	var p httpapi.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("refused poll: %v in %q", err, body)
	}
	return resp.StatusCode, p.Code
}

// pollUntil polls as device i until it is answered status, for at most
// ten seconds: the list of revoked serials is re-read in the background
// after a revocation here (NotifyRevocation).
func pollUntil(t *testing.T, e *campaignEnv, i, status int) string {
	t.Helper()
	var got int
	var code string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got, code = pollProblem(t, e, i); got == status {
			return code
		}
	}
	t.Fatalf("device %d's poll: %d %s, want %d", i, got, code, status)
	return ""
}

func TestPollOfRevokedDevicesRefused(t *testing.T) {
	t.Parallel()
	e := newCampaignEnv(t, 4)
	ctx := context.Background()
	for i := range 4 {
		if st, _ := pollProblem(t, e, i); st != http.StatusNoContent {
			t.Fatalf("device %d in good standing: %d, want 204", i, st)
		}
	}
	if _, err := e.admin.RevokeDevice(ctx, e.f.ids[0], "key compromise"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.TransitionDevice(ctx, e.f.ids[1], "suspend", "quarantine"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.TransitionDevice(ctx, e.f.ids[2], "decommission", "end of life"); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"device-revoked", "device-suspended", "device-decommissioned"} {
		if code := pollUntil(t, e, i, http.StatusForbidden); code != want {
			t.Errorf("device %d's poll refused with %q, want %q", i, code, want)
		}
	}
	if st, _ := pollProblem(t, e, 3); st != http.StatusNoContent {
		t.Errorf("a device in good standing beside them: %d, want 204", st)
	}
	audit, err := e.admin.ListAudit(ctx, httpapi.AuditQuery{Action: "device.update", Actor: "device:" + e.f.ids[0].String()})
	if err != nil {
		t.Fatal(err)
	}
	if len(audit.Events) == 0 || audit.Events[0].Outcome != "denied" {
		t.Errorf("the revoked device's poll is not audited as denied: %+v", audit.Events)
	}

	// Resumed: its certificate is off hold, and its polls are answered.
	if _, err := e.admin.TransitionDevice(ctx, e.f.ids[1], "resume", "cleared"); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, e, 1, http.StatusNoContent)
}
