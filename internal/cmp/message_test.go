package cmp

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// openSSLSeeds are requests OpenSSL 3.0's `openssl cmp` sent to a
// listener that recorded them (testdata/README).
func openSSLSeeds(t testing.TB) map[string][]byte {
	t.Helper()
	names, err := filepath.Glob("testdata/openssl-*.der")
	if err != nil || len(names) == 0 {
		t.Fatalf("no testdata/openssl-*.der seeds: %v", err)
	}
	seeds := map[string][]byte{}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		seeds[filepath.Base(n)] = b
	}
	return seeds
}

func TestParseOpenSSLRequests(t *testing.T) {
	want := map[string]int{"openssl-ir.der": TypeIR, "openssl-cr.der": TypeCR, "openssl-kur.der": TypeKUR,
		"openssl-rr.der": TypeRR, "openssl-genm.der": TypeGenM}
	for name, der := range openSSLSeeds(t) {
		m, err := Parse(der)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if typ, ok := want[name]; ok && m.Type() != typ {
			t.Errorf("%s: body %s, want %s", name, BodyName(m.Type()), BodyName(typ))
		}
		if len(m.Header.TransactionID) != 16 || len(m.Header.SenderNonce) != 16 || m.Header.MessageTime.IsZero() {
			t.Errorf("%s: header fields missing: %+v", name, m.Header)
		}
		// Re-encoding a parsed message gives the same bytes, so
		// ProtectedPart is what the sender signed.
		again, err := m.Marshal()
		if err != nil || !bytes.Equal(again, der) {
			t.Errorf("%s: re-encoding differs (%v)", name, err)
		}
		if m.Type() == TypeIR || m.Type() == TypeCR || m.Type() == TypeKUR {
			c, err := m.Content()
			if err != nil {
				t.Fatal(err)
			}
			reqs, err := ParseCertReqMessages(c)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			tpl, err := ParseTemplate(reqs[0].CertReq.CertTemplate.FullBytes)
			if err != nil || tpl.PublicKey == nil {
				t.Fatalf("%s: template %+v: %v", name, tpl, err)
			}
			if _, err := reqs[0].SignaturePOP(); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
}

func TestParseRefuses(t *testing.T) {
	seeds := openSSLSeeds(t)
	ir := seeds["openssl-ir.der"]
	for name, der := range map[string][]byte{
		"empty":     nil,
		"truncated": ir[:len(ir)-1],
		"trailing":  append(append([]byte(nil), ir...), 0),
		"oversized": append(append([]byte(nil), ir...), make([]byte, MaxMessage)...),
		"not DER":   []byte("POST / HTTP/1.1"),
	} {
		if _, err := Parse(der); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, der := range openSSLSeeds(f) {
		f.Add(der)
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		m, err := Parse(der)
		if err != nil {
			return
		}
		if _, err := m.ProtectedPart(); err != nil {
			t.Fatalf("a parsed message has no protected part: %v", err)
		}
		if c, err := m.Content(); err == nil {
			if reqs, err := ParseCertReqMessages(c); err == nil {
				for i := range reqs {
					ParseTemplate(reqs[i].CertReq.CertTemplate.FullBytes)
					reqs[i].SignaturePOP()
				}
			}
		}
	})
}
