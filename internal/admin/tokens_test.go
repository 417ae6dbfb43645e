package admin

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/audit"
)

func TestNewTokenFormat(t *testing.T) {
	secret, tok := NewToken("ci", []string{ScopeDevicesRead}, time.Hour)
	id, hash, ok := ParseBearer(secret)
	if !ok || id != tok.ID || hash != tok.Hash {
		t.Fatalf("token %q does not parse back to its record", secret)
	}
	if !strings.HasPrefix(secret, "hm_"+tok.ID+"_") || len(tok.ID) < 8 || len(tok.ID) > 16 {
		t.Fatalf("token %q, id %q", secret, tok.ID)
	}
	if tok.ExpiresAt.Sub(tok.CreatedAt) != time.Hour {
		t.Fatalf("expiry %v after creation", tok.ExpiresAt.Sub(tok.CreatedAt))
	}
	// The secret part is not stored anywhere in the record.
	if strings.Contains(tok.Name+tok.ID, secret[len("hm_"+tok.ID+"_"):]) {
		t.Fatal("secret in the record")
	}
	other, _ := NewToken("ci", nil, 0)
	if other == secret {
		t.Fatal("two tokens alike")
	}
	for _, bad := range []string{
		"", "hm_", "hm_abcdefgh", "hm_abcdefgh_", "xx" + secret[2:], secret + "A", secret[:len(secret)-1],
		"hm_ABCDEFGH_" + secret[len("hm_"+tok.ID+"_"):], "hm_abc_" + secret[len("hm_"+tok.ID+"_"):],
		"hm_" + tok.ID + "_" + strings.Repeat("=", 43),
	} {
		if _, _, ok := ParseBearer(bad); ok {
			t.Errorf("ParseBearer(%q) accepted", bad)
		}
	}
}

func TestEnsureBootstrapToken(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := &fakeTokens{}
	rec, log := newRecorder()
	tokens := NewTokens(st, rec, testNow)
	path := filepath.Join(dir, "admin.token")
	created, err := tokens.EnsureBootstrapToken(ctx, path)
	if err != nil || !created {
		t.Fatalf("first start: created %v, %v", created, err)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", info, err)
	}
	data, _ := os.ReadFile(path)
	id, hash, ok := ParseBearer(strings.TrimSpace(string(data)))
	tok, err := st.GetToken(ctx, id)
	if !ok || err != nil || tok.Hash != hash || len(tok.Scopes) != 1 || tok.Scopes[0] != ScopeAdmin {
		t.Fatalf("stored token %+v, %v", tok, err)
	}
	// A second start changes nothing.
	created, err = tokens.EnsureBootstrapToken(ctx, path)
	again, _ := os.ReadFile(path)
	if err != nil || created || string(again) != string(data) {
		t.Fatalf("second start: created %v, %v", created, err)
	}
	events := log.events
	if len(events) != 1 || events[0].Action != "token.create" || events[0].Actor != "system" || strings.Contains(events[0].Detail, string(data[10:])) {
		t.Fatalf("audit %+v", events)
	}
}

// FuzzParseBearer drives the Authorization token parser: what it accepts
// has the documented shape, and every token NewToken makes is accepted.
func FuzzParseBearer(f *testing.F) {
	good, _ := NewToken("seed", nil, 0)
	for _, s := range []string{good, "hm_abcdefgh_" + strings.Repeat("A", 43), "hm_", "", "hm_abc_def", good + "=", strings.ToUpper(good)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		id, _, ok := ParseBearer(token)
		if !ok {
			return
		}
		if !strings.HasPrefix(token, "hm_"+id+"_") || !audit.TokenIDPattern.MatchString(id) || len(token) != len("hm_"+id+"_")+43 {
			t.Fatalf("accepted %q", token)
		}
	})
}
