package console

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime/multipart"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hallmark-iot/hallmark/internal/admin"
)

// FuzzParseForm: a form body or query either decodes within the limits
// (each field once bar scope, valid UTF-8, bounded) or is refused with
// errForm; it never panics.
func FuzzParseForm(f *testing.F) {
	for _, seed := range []string{"", "csrf=abc&confirm=00&reason=lost", "scope=a&scope=b&name=x", "a=1&a=2", "%zz", "q=" + strings.Repeat("f", 70),
		"reason=%3Cscript%3E", "x=%ff%fe", strings.Repeat("a=1&", 70)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := parseForm(raw)
		if err != nil {
			if got != nil {
				t.Fatal("a refused form returned fields")
			}
			return
		}
		for name, vs := range got {
			if len(vs) > 1 && !repeatable[name] {
				t.Fatalf("field %q accepted %d times", name, len(vs))
			}
			for _, v := range vs {
				if len(v) > maxFieldSize || !utf8.ValidString(v) {
					t.Fatalf("field %q accepted a value of %d bytes or not UTF-8", name, len(v))
				}
			}
		}
	})
}

// FuzzDeviceFilter: whatever the query, the devices filter is refused
// with a message or is one the store accepts.
func FuzzDeviceFilter(f *testing.F) {
	for _, seed := range []string{"", "q=ab12", "q=ABCDEF", "q=zz", "state=revoked", "state=bogus", "suite=ed25519", "suite=rsa",
		"class=puf", "cloud=pending", "cloud=active", "after=" + strings.Repeat("0", 64), "after=12", "product=meter&batch=b-1"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseForm(raw)
		if err != nil {
			return
		}
		flt, err := deviceFilter(q)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("a refusal without a message")
			}
			return
		}
		if err := flt.Validate(); err != nil {
			t.Fatalf("accepted a filter the store refuses: %v", err)
		}
		if flt.Limit != devicePageSize+1 {
			t.Fatalf("limit %d", flt.Limit)
		}
	})
}

// FuzzParseSessionCookie: only 32 bytes of canonical unpadded base64url
// are a session secret, and they round-trip.
func FuzzParseSessionCookie(f *testing.F) {
	f.Add(base64.RawURLEncoding.EncodeToString(make([]byte, 32)))
	f.Add(base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 32)))
	f.Add("")
	f.Add(strings.Repeat("A", 43))
	f.Add(strings.Repeat("A", 42) + "B") // non-zero padding bits
	f.Add(base64.StdEncoding.EncodeToString(make([]byte, 32)))
	f.Fuzz(func(t *testing.T, v string) {
		s, ok := parseSessionCookie(v)
		if !ok {
			return
		}
		if base64.RawURLEncoding.EncodeToString(s[:]) != v {
			t.Fatalf("cookie %q accepted but encodes back to another value", v)
		}
	})
}

// FuzzReadUploadFields: a multipart body yields its fields, each once
// and bounded, and the manifest file after them, or an error.
func FuzzReadUploadFields(f *testing.F) {
	good := func(fields [][2]string, file string, fileFirst bool) []byte {
		var b bytes.Buffer
		w := multipart.NewWriter(&b)
		_ = w.SetBoundary("BOUNDARY")
		if fileFirst {
			fw, _ := w.CreateFormFile("manifest", "m")
			io.WriteString(fw, file)
		}
		for _, kv := range fields {
			w.WriteField(kv[0], kv[1])
		}
		if !fileFirst {
			fw, _ := w.CreateFormFile("manifest", "m")
			io.WriteString(fw, file)
		}
		w.Close()
		return b.Bytes()
	}
	f.Add(good([][2]string{{"csrf", "x"}, {"product", "meter"}}, "{}\n", false))
	f.Add(good([][2]string{{"csrf", "x"}, {"csrf", "y"}}, "", false))
	f.Add(good([][2]string{{"csrf", "x"}}, "data", true))
	f.Add(good(nil, "", false))
	f.Add([]byte("--BOUNDARY\r\nContent-Disposition: form-data\r\n\r\nx\r\n--BOUNDARY--\r\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, body []byte) {
		fields, file, err := readUploadFields(multipart.NewReader(bytes.NewReader(body), "BOUNDARY"))
		if err != nil {
			if fields != nil || file != nil {
				t.Fatal("an error with fields or a file")
			}
			return
		}
		if file == nil {
			t.Fatal("no error and no file")
		}
		for name, vs := range fields {
			if len(vs) != 1 || len(vs[0]) > maxFieldSize || name == uploadFile {
				t.Fatalf("field %q: %d values", name, len(vs))
			}
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(file, 1<<20))
	})
}

// TestCSRF: the csrf value is the session's, and no other session's.
func TestCSRF(t *testing.T) {
	var a, b admin.SessionSecret
	b[0] = 1
	ta := csrfToken(a)
	if !csrfValid(a, ta) || csrfValid(b, ta) || csrfValid(a, "") || csrfValid(a, ta[:len(ta)-1]) || csrfValid(a, ta+"A") {
		t.Fatal("csrf check accepts another session's value, or refuses its own")
	}
	if strings.Contains(ta, base64.RawURLEncoding.EncodeToString(a[:])) {
		t.Fatal("the csrf value shows the secret")
	}
}

// TestParseFormRefusals: the limits a form is refused by, with a
// message.
func TestParseFormRefusals(t *testing.T) {
	for _, raw := range []string{"a=1&a=2", "x=" + strings.Repeat("y", maxFieldSize+1), "%zz", "x=%ff", strings.Repeat("a=1&", maxFields+1),
		strings.Repeat("y", maxFormBody+1)} {
		if _, err := parseForm(raw); err == nil {
			t.Errorf("parseForm(%.40q) accepted", raw)
		}
	}
	got, err := parseForm("scope=a&scope=b&csrf=x")
	if err != nil || len(form(got).all("scope")) != 2 || got.Get("csrf") != "x" {
		t.Fatalf("a good form: %v %v", got, err)
	}
}
