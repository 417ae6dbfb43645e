package audit

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/store"
)

func TestSubject(t *testing.T) {
	id := strings.Repeat("ab", 32)
	for in, want := range map[string]string{
		"device:" + id:                      "device:" + id,
		"station:" + id:                     "station:" + id,
		id:                                  id,
		"device:" + strings.ToUpper(id):     "device:(invalid)",
		"device:abc\ntoken:admin ok\x1b[2J": "device:(invalid)",
		"token:abcdefgh1234":                "token:abcdefgh1234",
		"token:ABC_DEF":                     "token:(invalid)",
		"product:sensor-2":                  "product:sensor-2",
		"product:Sensor\u202e":              "product:(invalid)",
		"batch:batch_1.a":                   "batch:batch_1.a",
		"batch:../x":                        "batch:(invalid)",
		"address:192.0.2.7":                 "address:192.0.2.7",
		"address:2001:db8::1":               "address:2001:db8::1",
		"address:::ffff:192.0.2.7":          "address:(invalid)",
		"address:192.0.2.7:443":             "address:(invalid)",
		"address:1.2.3.4\nforged":           "address:(invalid)",
		OtherSources:                        OtherSources,
		"address:" + InvalidSource:          "address:" + InvalidSource,
		"/v1/admin/devices/{identity}":      "/v1/admin/devices/{identity}",
		"/v1/admin/devices/abc\n":           "(invalid)",
		"admin:everything":                  "(invalid)",
		"":                                  "(invalid)",
	} {
		if got := Subject(in); got != want {
			t.Errorf("Subject(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestActor(t *testing.T) {
	id := strings.Repeat("cd", 32)
	for in, want := range map[string]string{
		"anonymous":             "anonymous",
		"system":                "system",
		"token:abcdefgh1234":    "token:abcdefgh1234",
		"token:abc":             Invalid,
		"token:x\x1b[2J":        Invalid,
		"device:" + id:          "device:" + id,
		"device:" + id[:63]:     Invalid,
		"station:" + id:         Invalid,
		"root":                  Invalid,
		"anonymous\nsystem ok ": Invalid,
	} {
		if got := Actor(in); got != want {
			t.Errorf("Actor(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBuild(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.FixedZone("CET", 3600))
	e := Build(store.AuditEvent{Actor: "system", Action: "token.create\n", Subject: "token:abcdefgh",
		Outcome: "ok", Detail: strings.Repeat("x", 2*MaxField), RemoteAddr: "[::ffff:192.0.2.1]:443"}, now)
	if !e.Time.Equal(now) || e.Time.Location() != time.UTC {
		t.Errorf("time %v, want %v in UTC", e.Time, now)
	}
	if e.Action != `token.create\n` || e.RemoteAddr != "192.0.2.1" || len([]rune(e.Detail)) != MaxField || !strings.HasSuffix(e.Detail, "…") {
		t.Errorf("event %+v", e)
	}
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if e := Build(store.AuditEvent{Time: at, Actor: "token:bad!", Subject: "batch:a b"}, now); !e.Time.Equal(at) ||
		e.Actor != Invalid || e.Subject != "batch:"+Invalid {
		t.Errorf("dated event %+v", e)
	}
}

// failingLog refuses every append.
type failingLog struct{ ctxErr error }

func (f *failingLog) AppendAudit(ctx context.Context, _ store.AuditEvent) (int64, error) {
	f.ctxErr = ctx.Err()
	return 0, errors.New("disk full")
}

// TestRecorderLost: a lost event is one log line with the request ID and
// the event, and the append is not cut short by the caller's context.
func TestRecorderLost(t *testing.T) {
	var logs bytes.Buffer
	st := &failingLog{}
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	r := NewRecorder(st, slog.New(slog.NewTextHandler(&logs, nil)), func() time.Time { return now })
	ctx, cancel := context.WithCancel(WithRequestID(context.Background(), "req-12345678"))
	cancel()
	r.Record(ctx, store.AuditEvent{Actor: "token:abcdefgh", Action: "device.revoke", Subject: "device:x",
		Outcome: "ok", Detail: "stolen", RemoteAddr: "192.0.2.9"})
	if st.ctxErr != nil {
		t.Errorf("append ran on a cancelled context: %v", st.ctxErr)
	}
	line := logs.String()
	for _, want := range []string{`msg="audit event lost"`, "request_id=req-12345678", "actor=token:abcdefgh",
		"action=device.revoke", `subject=device:(invalid)`, "outcome=ok", "detail=stolen", "remote_addr=192.0.2.9", `error="disk full"`} {
		if !strings.Contains(line, want) {
			t.Errorf("log line %q lacks %s", line, want)
		}
	}
	if strings.Count(line, "\n") != 1 {
		t.Errorf("%d log lines, want 1", strings.Count(line, "\n"))
	}
	logs.Reset()
	r.Record(context.Background(), store.AuditEvent{Actor: "system", Action: "x"})
	if strings.Contains(logs.String(), "request_id") {
		t.Errorf("request_id logged without one: %q", logs.String())
	}
}

// TestRecorderDates: an undated event takes the recorder's clock.
func TestRecorderDates(t *testing.T) {
	log := &memoryLog{}
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	NewRecorder(log, nil, func() time.Time { return now }).Record(context.Background(), store.AuditEvent{Actor: "system", Action: "x"})
	if got := log.all(); len(got) != 1 || !got[0].Time.Equal(now) {
		t.Fatalf("events %+v", got)
	}
}
