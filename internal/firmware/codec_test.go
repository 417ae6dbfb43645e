package firmware

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// put returns a copy of data with the big-endian uint16 v at offset i.
func put16(data []byte, i int, v uint16) []byte {
	c := bytes.Clone(data)
	binary.BigEndian.PutUint16(c[i:], v)
	return c
}

func put32(data []byte, i int, v uint32) []byte {
	c := bytes.Clone(data)
	binary.BigEndian.PutUint32(c[i:], v)
	return c
}

func TestParseRefuses(t *testing.T) {
	ed, p256 := signer(t, sigalg.Ed25519, 1), signer(t, sigalg.ECDSAP256, 1)
	plain := marshal(t, build(t, testMeta, nil, ed))
	enc := marshal(t, build(t, testMeta, classKey(t, sealing.X25519).Public(), ed))
	hdr, encHdr := headerSize(plain), headerSize(enc)
	sigBlock := hdr + len(testCode)
	// Offsets inside the first signature of plain: count, code, key length.
	codeAt, keyLenAt := sigBlock+1, sigBlock+2
	keyLen := int(binary.BigEndian.Uint16(plain[keyLenAt:]))
	sigLenAt := keyLenAt + 2 + keyLen
	twoSigs := marshal(t, build(t, testMeta, nil, ed, p256))

	cases := map[string][]byte{
		"empty":                                nil,
		"bad magic":                            xor(plain, 0, 0x20),
		"format version 2":                     xor(plain, offVersion, 3),
		"format version 0":                     xor(plain, offVersion, 1),
		"image type 0":                         xor(plain, offType, byte(TypeApplication)),
		"image type 3":                         xor(plain, offType, 1),
		"header size too small":                put16(plain, offHeaderSize, uint16(hdr-1)),
		"header size too large":                put16(plain, offHeaderSize, uint16(hdr+1)),
		"header size beyond maximum":           put16(plain, offHeaderSize, MaxHeaderSize+1),
		"unknown flag":                         put16(plain, offFlags, 2),
		"plain image flagged encrypted":        put16(plain, offFlags, flagEncrypted),
		"encrypted image flagged plain":        put16(enc, offFlags, 0),
		"payload size 0":                       put32(plain, offPayloadSize, 0),
		"payload size one short":               put32(plain, offPayloadSize, uint32(len(testCode)-1)),
		"payload size one long":                put32(plain, offPayloadSize, uint32(len(testCode)+1)),
		"payload size beyond limit":            put32(plain, offPayloadSize, MaxPayloadSize+1),
		"encrypted payload shorter than a tag": put32(enc, offPayloadSize, sealing.Overhead),
		"unknown KEM":                          put16(enc, fixedSize, 0x0010),
		"encapsulated key length":              put16(enc, fixedSize+2+sha256.Size, 31),
		"payload digest":                       flip(plain, hdr-1),
		"payload byte":                         flip(plain, hdr),
		"ciphertext byte":                      flip(enc, encHdr),
		"no signature block":                   plain[:sigBlock],
		"five signatures":                      xor(plain, sigBlock, 1^5),
		"count says two, one present":          xor(plain, sigBlock, 1^2),
		"count says zero, one present":         xor(plain, sigBlock, 1),
		"trailing byte":                        append(bytes.Clone(plain), 0),
		"unknown suite code":                   xor(plain, codeAt, 2^9),
		"suite code of another key":            xor(plain, codeAt, 2^1),
		"signer key truncated":                 put16(plain, keyLenAt, uint16(keyLen-1)),
		"signer key not canonical":             xor(plain, keyLenAt+2+1, 1),
		"signature empty":                      put16(plain, sigLenAt, 0),
		"signature too long":                   put16(plain, sigLenAt, 65),
		"signature truncated":                  plain[:len(plain)-1],
		"same signer twice":                    duplicateSignature(t, plain, sigBlock),
		"second signature truncated":           twoSigs[:len(twoSigs)-2],
		"oversized":                            make([]byte, MaxImageSize+1),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse(data); !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

// duplicateSignature appends a second copy of the only signature of data.
func duplicateSignature(t *testing.T, data []byte, sigBlock int) []byte {
	t.Helper()
	if data[sigBlock] != 1 {
		t.Fatal("want one signature")
	}
	sig := data[sigBlock+1:]
	out := append(bytes.Clone(data[:sigBlock]), 2)
	out = append(out, sig...)
	return append(out, sig...)
}

// Every proper prefix of a valid image is refused.
func TestParseRefusesEveryTruncation(t *testing.T) {
	for _, data := range [][]byte{
		marshal(t, build(t, testMeta, nil, signer(t, sigalg.ECDSAP256, 1))),
		marshal(t, build(t, testMeta, classKey(t, sealing.MLKEM768X25519).Public(), signer(t, sigalg.Ed25519, 1))),
	} {
		for n := range len(data) {
			if _, err := Parse(data[:n]); !errors.Is(err, ErrMalformed) {
				t.Fatalf("prefix of %d of %d bytes: %v", n, len(data), err)
			}
		}
	}
}

func TestParseAcceptsUnsigned(t *testing.T) {
	data := marshal(t, build(t, testMeta, nil))
	if data[len(data)-1] != 0 {
		t.Fatal("an unsigned image does not end with a zero signature count")
	}
	img := mustParse(t, data)
	if len(img.Signatures()) != 0 || !bytes.Equal(img.Payload(), testCode) {
		t.Fatal("unsigned image")
	}
}

func TestParseCopiesInput(t *testing.T) {
	data := marshal(t, build(t, testMeta, nil, signer(t, sigalg.Ed25519, 1)))
	img := mustParse(t, data)
	want := bytes.Clone(data)
	for i := range data {
		data[i] = 0
	}
	if !bytes.Equal(marshal(t, img), want) {
		t.Fatal("the image shares memory with the parsed bytes")
	}
}

func TestMaximumSizes(t *testing.T) {
	img, err := New(testMeta, make([]byte, MaxPayloadSize))
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Encrypt(classKey(t, sealing.MLKEM768X25519).Public()); err != nil {
		t.Fatal(err)
	}
	for i := range MaxSignatures {
		if err := img.Sign(signer(t, sigalg.MLDSA87, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	data := marshal(t, img)
	if len(data) > MaxImageSize {
		t.Fatalf("largest image is %d bytes, MaxImageSize %d", len(data), MaxImageSize)
	}
	if headerSize(data) > MaxHeaderSize {
		t.Fatalf("largest header is %d bytes", headerSize(data))
	}
	if !bytes.Equal(marshal(t, mustParse(t, data)), data) {
		t.Fatal("largest image does not round-trip")
	}
}
