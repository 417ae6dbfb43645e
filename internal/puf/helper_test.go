package puf

import (
	"bytes"
	"errors"
	"testing"
)

func validHelperBytes(t testing.TB) []byte {
	t.Helper()
	h := &HelperData{}
	for i := range h.Salt {
		h.Salt[i] = byte(i)
	}
	for i := range h.Check {
		h.Check[i] = byte(0xa0 + i)
	}
	for i := range h.Offset {
		h.Offset[i] = byte(i * 7)
	}
	h.Offset[OffsetSize-1] &= 0x3f // clear the padding bits
	b, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHelperDataRoundTrip(t *testing.T) {
	b := validHelperBytes(t)
	if len(b) != HelperSize || HelperSize != 405 {
		t.Fatalf("encoded size %d, HelperSize %d, want 405", len(b), HelperSize)
	}
	if !bytes.HasPrefix(b, []byte("HMPF\x01\x01\x01")) {
		t.Fatalf("header %x", b[:7])
	}
	h, err := ParseHelperData(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.Salt[1] != 1 || h.Check[0] != 0xa0 || h.Offset[2] != 14 {
		t.Fatal("fields not decoded in place")
	}
	again, err := h.MarshalBinary()
	if err != nil || !bytes.Equal(again, b) {
		t.Fatalf("re-encoding differs: %v", err)
	}
	var u HelperData
	if err := u.UnmarshalBinary(b); err != nil || u != *h {
		t.Fatalf("UnmarshalBinary: %v", err)
	}
}

func TestParseHelperDataRejects(t *testing.T) {
	mutate := func(f func(b []byte) []byte) []byte { return f(validHelperBytes(t)) }
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"one byte short", mutate(func(b []byte) []byte { return b[:len(b)-1] })},
		{"one byte long", mutate(func(b []byte) []byte { return append(b, 0) })},
		{"bad magic", mutate(func(b []byte) []byte { b[0] = 'X'; return b })},
		{"version 0", mutate(func(b []byte) []byte { b[4] = 0; return b })},
		{"version 2", mutate(func(b []byte) []byte { b[4] = 2; return b })},
		{"unknown inner code", mutate(func(b []byte) []byte { b[5] = 2; return b })},
		{"unknown outer code", mutate(func(b []byte) []byte { b[6] = 0; return b })},
		{"padding bit 7", mutate(func(b []byte) []byte { b[len(b)-1] |= 0x80; return b })},
		{"padding bit 6", mutate(func(b []byte) []byte { b[len(b)-1] |= 0x40; return b })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParseHelperData(tt.data)
			if !errors.Is(err, ErrMalformedHelper) || h != nil {
				t.Fatalf("got %v, %v; want ErrMalformedHelper", h, err)
			}
			var u HelperData
			if err := u.UnmarshalBinary(tt.data); !errors.Is(err, ErrMalformedHelper) {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
		})
	}
	t.Run("marshal rejects padding", func(t *testing.T) {
		h := &HelperData{}
		h.Offset[OffsetSize-1] = 0xff
		if _, err := h.MarshalBinary(); !errors.Is(err, ErrMalformedHelper) {
			t.Fatalf("err = %v", err)
		}
	})
}

// FuzzParseHelperData checks that the parser never panics, rejects with
// ErrMalformedHelper, accepts only canonical encodings, and that whatever it
// accepts is safe to hand to Reconstruct.
func FuzzParseHelperData(f *testing.F) {
	valid := validHelperBytes(f)
	f.Add(valid)
	f.Add([]byte{})
	f.Add([]byte("HMPF"))
	f.Add(valid[:len(valid)-1])
	f.Add(append(append([]byte(nil), valid...), 0))
	bad := append([]byte(nil), valid...)
	bad[4] = 2
	f.Add(bad)
	reading := make([]byte, OffsetSize)
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseHelperData(data)
		if err != nil {
			if !errors.Is(err, ErrMalformedHelper) || h != nil {
				t.Fatalf("rejection %v does not wrap ErrMalformedHelper", err)
			}
			return
		}
		out, err := h.MarshalBinary()
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("accepted a non-canonical encoding: %v", err)
		}
		if _, err := Reconstruct(reading, h); err != nil && !errors.Is(err, ErrReconstruct) {
			t.Fatalf("reconstruct with parsed helper: %v", err)
		}
	})
}
