package connector_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/connector"
)

func TestParseHint(t *testing.T) {
	h := connector.Hint{Campaign: "cmp_0123456789abcdef", At: time.Date(2026, 12, 2, 10, 41, 21, 710054000, time.UTC)}
	got, err := connector.ParseHint(h.Marshal())
	if err != nil || got != h {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for name, in := range map[string]string{
		"empty (a cleared retained hint)": ``,
		"not JSON":                        `hello`,
		"unknown field":                   `{"campaign":"cmp_0123456789abcdef","at":"2026-12-02T10:41:21Z","image":"x"}`,
		"no time":                         `{"campaign":"cmp_0123456789abcdef"}`,
		"bad campaign":                    `{"campaign":"cmp_../../etc","at":"2026-12-02T10:41:21Z"}`,
		"trailing data":                   `{"campaign":"cmp_0123456789abcdef","at":"2026-12-02T10:41:21Z"} {}`,
		"too long":                        `{"campaign":"cmp_0123456789abcdef","at":"2026-12-02T10:41:21Z"}` + string(bytes.Repeat([]byte(" "), 300)),
	} {
		if _, err := connector.ParseHint([]byte(in)); !errors.Is(err, connector.ErrBadHint) {
			t.Errorf("%s: got %v, want ErrBadHint", name, err)
		}
	}
}

func FuzzParseHint(f *testing.F) {
	f.Add([]byte(`{"campaign":"cmp_0123456789abcdef","at":"2026-12-02T10:41:21Z"}`))
	f.Add([]byte(`{"campaign":"cmp_0123456789abcdef","at":"2026-12-02T10:41:21.710054+01:00"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := connector.ParseHint(data)
		if err != nil {
			if !errors.Is(err, connector.ErrBadHint) {
				t.Fatalf("error not ErrBadHint: %v", err)
			}
			return
		}
		// What parses encodes and parses to the same hint.
		again, err := connector.ParseHint(h.Marshal())
		if err != nil || !again.At.Equal(h.At) || again.Campaign != h.Campaign {
			t.Fatalf("%+v re-parsed as %+v, %v", h, again, err)
		}
	})
}
