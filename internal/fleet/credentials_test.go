package fleet

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestCredentialsRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewCredentialWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64][][]byte{7: {[]byte("leaf seven"), []byte("issuing CA")}, 1 << 40: {[]byte("a leaf alone")}}
	for _, i := range []uint64{7, 1 << 40} {
		if err := w.Add(i, want[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Add(3, nil); err == nil {
		t.Fatal("an empty chain was recorded")
	}
	if err := w.Flush(); err != nil || w.Count() != 2 {
		t.Fatalf("flush: %v, %d records", err, w.Count())
	}
	r, err := NewCredentialReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		i, chain, err := r.Next()
		if err != nil || len(chain) != len(want[i]) {
			t.Fatalf("record %d: %q, %v", i, chain, err)
		}
		for k := range chain {
			if !bytes.Equal(chain[k], want[i][k]) {
				t.Fatalf("record %d certificate %d: %q", i, k, chain[k])
			}
		}
	}
	if _, _, err := r.Next(); err != io.EOF {
		t.Fatalf("after the last record: %v", err)
	}
	// A file cut inside a record is malformed, not a shorter file.
	r, _ = NewCredentialReader(bytes.NewReader(buf.Bytes()[:buf.Len()-3]))
	r.Next()
	if _, _, err := r.Next(); !errors.Is(err, ErrCredentialsFormat) {
		t.Fatalf("truncated: %v", err)
	}
	if _, err := NewCredentialReader(bytes.NewReader([]byte("hallmark manifest\n"))); !errors.Is(err, ErrCredentialsFormat) {
		t.Fatalf("another file: %v", err)
	}
}

// FuzzCredentialReader: any input is read to io.EOF or refused with
// ErrCredentialsFormat, within the record limits, without panicking.
func FuzzCredentialReader(f *testing.F) {
	var buf bytes.Buffer
	w, _ := NewCredentialWriter(&buf)
	w.Add(1, [][]byte{[]byte("leaf"), []byte("ca")})
	w.Add(300, [][]byte{bytes.Repeat([]byte{0x30}, 200)})
	w.Flush()
	f.Add(buf.Bytes())
	f.Add([]byte(credentialsMagic))
	f.Add([]byte(credentialsMagic + "\x01\x09"))
	f.Add([]byte(credentialsMagic + "\x01\x01\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewCredentialReader(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrCredentialsFormat) {
				t.Fatalf("header: %v", err)
			}
			return
		}
		for range 1000 {
			_, chain, err := r.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				if !errors.Is(err, ErrCredentialsFormat) {
					t.Fatalf("record: %v", err)
				}
				return
			}
			if len(chain) == 0 || len(chain) > maxChainLen {
				t.Fatalf("chain of %d certificates", len(chain))
			}
		}
	})
}
