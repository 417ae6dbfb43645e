package chain

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

func testKey(t testing.TB) crypto.Signer {
	suite, err := sigalg.Lookup(string(sigalg.ECDSAP256))
	if err != nil {
		t.Fatal(err)
	}
	key, err := suite.DeriveKey(bytes.Repeat([]byte{7}, sigalg.SeedSize))
	if err != nil {
		t.Fatal(err)
	}
	return key
}

var sampleTime = time.Date(2026, 12, 2, 10, 0, 0, 123456000, time.UTC)

func sampleEvent(i int) store.AuditEvent {
	return store.AuditEvent{Seq: int64(i), Time: sampleTime.Add(time.Duration(i) * time.Second), Actor: "token:adm",
		Action: "device.revoke", Subject: "device:ab12", Outcome: "ok", Detail: "reason=test", RemoteAddr: "192.0.2.1"}
}

// TestKnownAnswer pins the encoding and the hashes: a change to either
// breaks every chain already stored.
func TestKnownAnswer(t *testing.T) {
	e := sampleEvent(1)
	if got, want := hex.EncodeToString(Canonical(e)), "0000000000000001"+"000661a3b4cc6c80"+
		"00000009746f6b656e3a61646d"+"0000000d6465766963652e7265766f6b65"+"0000000b6465766963653a61623132"+
		"000000026f6b"+"0000000b726561736f6e3d74657374"+"0000000931393"+"22e302e322e31"; got != want {
		t.Fatalf("Canonical:\n got %s\nwant %s", got, want)
	}
	h := Seal(1, [32]byte{}, e)
	if got, want := hex.EncodeToString(h[:]), knownLink; got != want {
		t.Fatalf("Seal: got %s, want %s", got, want)
	}
}

// knownLink was computed independently of this package (Python's
// hashlib over the same layout).
const knownLink = "b294cfc32dffb6f2b9d619c9591832d1e32fbf70505d3719e6126a1affb88852"

// TestCanonicalLengthPrefixed: moving bytes between fields changes the
// encoding.
func TestCanonicalLengthPrefixed(t *testing.T) {
	a, b := sampleEvent(1), sampleEvent(1)
	a.Actor, a.Action = "ab", "c"
	b.Actor, b.Action = "a", "bc"
	if bytes.Equal(Canonical(a), Canonical(b)) {
		t.Fatal("two events share an encoding")
	}
}

func TestCheckpointSignature(t *testing.T) {
	key := testKey(t)
	c, err := SignCheckpoint(key, store.ChainLink{Pos: 5, Hash: [32]byte{1}}, 1, sampleTime)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyCheckpoint(key.Public(), c); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(*store.AuditCheckpoint){
		"seq":   func(c *store.AuditCheckpoint) { c.Seq++ },
		"head":  func(c *store.AuditCheckpoint) { c.Head[0] ^= 1 },
		"first": func(c *store.AuditCheckpoint) { c.First++ },
		"time":  func(c *store.AuditCheckpoint) { c.Time = c.Time.Add(time.Microsecond) },
		"key":   func(c *store.AuditCheckpoint) { c.KeyID = strings.Repeat("0", 64) },
	} {
		bad := c
		bad.Signature = bytes.Clone(c.Signature)
		edit(&bad)
		if err := VerifyCheckpoint(key.Public(), bad); !errors.Is(err, ErrCheckpoint) {
			t.Errorf("%s edited: %v", name, err)
		}
	}
}

// sampleExport is a valid export of n events with a checkpoint at every
// fifth position.
func sampleExport(t testing.TB, n int) []byte {
	key := testKey(t)
	var buf bytes.Buffer
	x, err := NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var prev [32]byte
	var recs []store.ChainRecord
	for i := 1; i <= n; i++ {
		e := sampleEvent(i)
		prev = Seal(int64(i), prev, e)
		recs = append(recs, store.ChainRecord{Link: store.ChainLink{Pos: int64(i), EventSeq: e.Seq, Hash: prev}, Event: e})
		if i%5 == 0 {
			c, err := SignCheckpoint(key, recs[i-1].Link, 1, sampleTime)
			if err != nil {
				t.Fatal(err)
			}
			if err := x.Checkpoint(c); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, r := range recs {
		if err := x.Record(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := x.Record(store.ChainRecord{Event: sampleEvent(n + 1)}); err != nil {
		t.Fatal(err)
	}
	if err := x.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestExportRoundTrip(t *testing.T) {
	rep, err := VerifyExport(bytes.NewReader(sampleExport(t, 12)), testKey(t).Public())
	if err != nil {
		t.Fatal(err)
	}
	if want := (Report{Entries: 12, First: 1, Head: 12, Checkpoints: 2, LastSigned: 10, Unsigned: 2, Unlinked: 1}); rep != want {
		t.Fatalf("report %+v, want %+v", rep, want)
	}
}

func TestExportRefusals(t *testing.T) {
	good := string(sampleExport(t, 5))
	lines := strings.SplitAfter(good, "\n")
	for name, in := range map[string]string{
		"empty":            "",
		"no header":        strings.Join(lines[1:], ""),
		"two headers":      lines[0] + good,
		"unknown field":    lines[0] + `{"entry":{"pos":1,"hash":"` + strings.Repeat("0", 64) + `","event_seq":1,"missing":true,"x":1}}` + "\n",
		"upper-case hash":  lines[0] + `{"entry":{"pos":1,"hash":"` + strings.Repeat("A", 64) + `","event_seq":1,"missing":true}}` + "\n",
		"two kinds":        lines[0] + `{"format":"x","entry":{}}` + "\n",
		"late checkpoint":  lines[0] + lines[2] + lines[1],
		"negative pos":     lines[0] + `{"entry":{"pos":-1,"event_seq":1,"missing":true}}` + "\n",
		"event and gone":   lines[0] + `{"entry":{"pos":1,"hash":"` + strings.Repeat("0", 64) + `","event_seq":1,"missing":true,"event":{}}}` + "\n",
		"trailing garbage": lines[0] + `{"entry":{"event_seq":1,"event":{}}} x` + "\n",
		"long line":        lines[0] + strings.Repeat(" ", MaxLine+1) + "\n",
	} {
		if _, err := VerifyExport(strings.NewReader(in), testKey(t).Public()); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", name, err)
		}
	}
}

// FuzzVerifyExport: any input is refused cleanly or verified; the reader
// never panics and never accepts an entry that does not chain.
func FuzzVerifyExport(f *testing.F) {
	good := sampleExport(f, 7)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(bytes.Replace(good, []byte(`"ok"`), []byte(`"no"`), 1))
	f.Add([]byte(`{"format":"` + Format + `"}` + "\n" + `{"entry":{"event_seq":-1,"early":true,"event":{"time":"2026-12-02T10:00:00Z","actor":"","action":"","subject":"","outcome":"","detail":"","remote_addr":""}}}`))
	f.Add([]byte("{}\n"))
	pub := testKey(f).Public()
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := VerifyExport(bytes.NewReader(data), pub)
		if err == nil && rep.Entries > 0 && rep.Head < rep.First {
			t.Fatalf("verified a log that ends before it starts: %+v", rep)
		}
	})
}
