package manifest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// TestNonCanonicalLinesAreRefused changes a line into another spelling of
// the same JSON, or into JSON the format does not allow, and re-signs the
// manifest, so that only the reader's own checks stand between the change
// and acceptance.
func TestNonCanonicalLinesAreRefused(t *testing.T) {
	data, _ := smallManifest(t)
	station := deriveKey(t, sigalg.Ed25519, 0x51)
	lines := splitLines(data)
	header, record := string(lines[0]), string(lines[1])
	reordered := func(line string) string {
		var m map[string]any
		json.Unmarshal([]byte(line), &m)
		out, _ := json.Marshal(m) // keys sorted: not the canonical order
		return string(out) + "\n"
	}
	id := strings.Split(record, `"`)[5]
	stationHex := strings.Split(header, `"`)[11]
	for name, edit := range map[string]struct {
		line    int
		changed string
	}{
		"space after colon":        {1, strings.Replace(record, `":`, `": `, 1)},
		"space before newline":     {1, strings.Replace(record, "}\n", "} \n", 1)},
		"CRLF":                     {1, strings.Replace(record, "}\n", "}\r\n", 1)},
		"fields reordered":         {1, reordered(record)},
		"duplicate key":            {1, strings.Replace(record, `{"seq":1,`, `{"seq":1,"seq":1,`, 1)},
		"key in other case":        {1, strings.Replace(record, `"seq"`, `"Seq"`, 1)},
		"unknown field":            {1, strings.Replace(record, `"proof"`, `"extra":"x","proof"`, 1)},
		"missing field":            {1, strings.Replace(record, `"injection":"none",`, ``, 1)},
		"null field":               {1, strings.Replace(record, `"injection":"none"`, `"injection":null`, 1)},
		"escaped letter":           {1, strings.Replace(record, `"puf"`, `"p\u0075f"`, 1)},
		"seq as 1.0":               {1, strings.Replace(record, `"seq":1,`, `"seq":1.0,`, 1)},
		"seq with a leading zero":  {1, strings.Replace(record, `"seq":1,`, `"seq":01,`, 1)},
		"seq as 1e0":               {1, strings.Replace(record, `"seq":1,`, `"seq":1e0,`, 1)},
		"identity in upper case":   {1, strings.Replace(record, id, strings.ToUpper(id), 1)},
		"base64 without padding":   {1, strings.Replace(record, `oaGhoaGhoaGhoaGhoaGhoQ==`, `oaGhoaGhoaGhoaGhoaGhoQ`, 1)},
		"base64 with stray bits":   {1, strings.Replace(record, `oaGhoaGhoaGhoaGhoaGhoQ==`, `oaGhoaGhoaGhoaGhoaGhoR==`, 1)},
		"base64 URL alphabet":      {1, strings.Replace(record, `/`, `_`, 1)},
		"time with an offset":      {1, strings.Replace(record, `09:30:00Z`, `09:30:00+00:00`, 1)},
		"time with fractions":      {1, strings.Replace(record, `09:30:00Z`, `09:30:00.000Z`, 1)},
		"time in lower case":       {1, strings.Replace(record, `T09:30:00Z`, `t09:30:00z`, 1)},
		"unknown root of trust":    {1, strings.Replace(record, `"puf"`, `"hsm"`, 1)},
		"puf device injected":      {1, strings.Replace(record, `"none"`, `"clear"`, 1)},
		"algorithm alias":          {2, strings.Replace(string(lines[2]), `"ecdsa-p256"`, `"p256"`, 1)},
		"two objects on one line":  {1, strings.Replace(record, "}\n", "}{}\n", 1)},
		"array instead of object":  {1, "[" + strings.TrimSuffix(record, "\n") + "]\n"},
		"byte order mark":          {0, "\ufeff" + header},
		"header format v2":         {0, strings.Replace(header, `/v1"`, `/v2"`, 1)},
		"header station wrong":     {0, strings.Replace(header, stationHex, otherHex(stationHex), 1)},
		"header algorithm wrong":   {0, strings.Replace(header, `"station_algorithm":"ed25519"`, `"station_algorithm":"ml-dsa-65"`, 1)},
		"header batch with space":  {0, strings.Replace(header, `"batch":"B1"`, `"batch":"B 1"`, 1)},
		"header created offset":    {0, strings.Replace(header, `09:30:00Z`, `10:30:00+01:00`, 1)},
		"header field reordered":   {0, reordered(header)},
		"header with unknown key":  {0, strings.Replace(header, `"created"`, `"note":"x","created"`, 1)},
		"header truncated JSON":    {0, header[:len(header)-3] + "\n"},
		"record of 17 KiB":         {1, strings.Replace(record, `"proof"`, `"pad":"`+strings.Repeat("x", 17<<10)+`","proof"`, 1)},
		"record with a NUL":        {1, strings.Replace(record, `"puf"`, `"puf\u0000"`, 1)},
		"record with invalid UTF8": {1, strings.Replace(record, `"puf"`, "\"puf\xff\"", 1)},
	} {
		t.Run(name, func(t *testing.T) {
			changed := make([][]byte, len(lines)-1)
			copy(changed, lines[:len(lines)-1])
			if edit.changed == string(lines[edit.line]) {
				t.Fatal("the edit changed nothing")
			}
			changed[edit.line] = []byte(edit.changed)
			forged := signLines(t, station, changed...)
			if _, _, err := verifyAll(forged, station.Public()); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Verify: %v, want ErrMalformed", err)
			}
			if _, err := Inspect(context.Background(), bytes.NewReader(forged), nil); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Inspect: %v, want ErrMalformed", err)
			}
		})
	}
}

func TestTrailerChecks(t *testing.T) {
	data, _ := smallManifest(t)
	station := deriveKey(t, sigalg.Ed25519, 0x51).Public()
	lines := splitLines(data)
	trailer := string(lines[3])
	body := bytes.Join(lines[:3], nil)
	digestHex := strings.Split(trailer, `"`)[5]
	for name, tc := range map[string]struct {
		trailer string
		want    error
	}{
		"count too high":       {strings.Replace(trailer, `"count":2`, `"count":3`, 1), ErrSignature},
		"count too low":        {strings.Replace(trailer, `"count":2`, `"count":1`, 1), ErrSignature},
		"count with zero":      {strings.Replace(trailer, `"count":2`, `"count":02`, 1), ErrMalformed},
		"digest in upper case": {strings.Replace(trailer, digestHex, strings.ToUpper(digestHex), 1), ErrMalformed},
		"digest short":         {strings.Replace(trailer, digestHex, digestHex[2:], 1), ErrMalformed},
		"digest of nothing":    {strings.Replace(trailer, digestHex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", 1), ErrSignature},
		"signature empty":      {strings.Replace(trailer, strings.Split(trailer, `"`)[9], "", 1), ErrSignature},
		"data after trailer":   {trailer + "\n", ErrMalformed},
		"second trailer":       {trailer + trailer, ErrMalformed},
		"unknown field":        {strings.Replace(trailer, `"signature"`, `"x":1,"signature"`, 1), ErrMalformed},
	} {
		t.Run(name, func(t *testing.T) {
			forged := append(bytes.Clone(body), tc.trailer...)
			if _, _, err := verifyAll(forged, station); !errors.Is(err, tc.want) {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestWeakDeviceKeyRefused(t *testing.T) {
	station := newKey(t, sigalg.Ed25519)
	// The Ed25519 identity point, of small order: any signature "verifies"
	// for many messages, so the key must never be accepted.
	spki := append([]byte{0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00, 0x01}, make([]byte, 31)...)
	rec := Record{
		Identity: identity.FromSPKI(spki), Algorithm: sigalg.Ed25519, SPKI: spki,
		RootOfTrust: PUF, Injection: NotInjected, Time: testTime,
		Nonce: bytes.Repeat([]byte{1}, 16), Proof: make([]byte, 64),
	}
	data := signLines(t, station, headerLine(t, station), recordLine(t, station, 1, rec))
	if _, _, err := verifyAll(data, station.Public()); !errors.Is(err, sigalg.ErrWeakKey) || !errors.Is(err, ErrMalformed) {
		t.Fatalf("Verify of a small-order device key: %v, want ErrMalformed and sigalg.ErrWeakKey", err)
	}
	w, _ := NewWriter(&bytes.Buffer{}, Header{Batch: "B"}, station)
	if err := w.Add(context.Background(), rec); !errors.Is(err, sigalg.ErrWeakKey) {
		t.Fatalf("Add of a small-order device key: %v, want sigalg.ErrWeakKey", err)
	}
}

func TestCallbackAndContext(t *testing.T) {
	data, devs := smallManifest(t)
	station := deriveKey(t, sigalg.Ed25519, 0x51).Public()
	errStop := errors.New("staging table full")
	calls := 0
	sum, err := Verify(context.Background(), bytes.NewReader(data), station, func(r Record) error {
		calls++
		if r.Identity != devs[0].rec.Identity {
			t.Errorf("first record delivered is %s", r.Identity)
		}
		return errStop
	})
	if !errors.Is(err, errStop) || calls != 1 || sum.Verified {
		t.Fatalf("callback error: %v after %d calls, verified %v", err, calls, sum.Verified)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Verify(ctx, bytes.NewReader(data), station, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
	if _, err := Verify(context.Background(), bytes.NewReader(data), nil, nil); err == nil {
		t.Fatal("Verify without a station key succeeded")
	}
}

func TestEmptyBatch(t *testing.T) {
	station := newKey(t, sigalg.MLDSA87)
	data := writeManifest(t, station, "empty")
	_, sum, err := verifyAll(data, station.Public())
	if err != nil || sum.Count != 0 || !sum.Verified {
		t.Fatalf("empty batch: %+v, %v", sum, err)
	}
	for _, in := range []string{"", "\n", "{}\n"} {
		if _, _, err := verifyAll([]byte(in), station.Public()); !errors.Is(err, ErrMalformed) {
			t.Errorf("input %q: %v, want ErrMalformed", in, err)
		}
	}
}

// otherHex changes the first digit of a hex string.
func otherHex(h string) string {
	if h[0] == '0' {
		return "1" + h[1:]
	}
	return "0" + h[1:]
}
