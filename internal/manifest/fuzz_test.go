package manifest

import (
	"bytes"
	"context"
	"crypto"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// FuzzVerify feeds arbitrary bytes to Verify and Inspect. Properties: no
// panic; whatever Verify accepts, Inspect accepts; a manifest Verify
// accepts is exactly what Writer makes of the records it delivered (the
// station key is Ed25519, whose signatures are deterministic, so this
// pins every byte); and what Inspect accepts re-encodes to its own bytes
// up to a single trailer line whose digest matches.
func FuzzVerify(f *testing.F) {
	station := deriveKey(f, sigalg.Ed25519, 0x51)
	data, _ := smallManifest(f)
	f.Add(data)
	f.Add(data[:len(data)-1])
	f.Add(writeManifest(f, station, "empty"))
	lines := splitLines(data)
	f.Add(bytes.Join([][]byte{lines[0], lines[2], lines[1], lines[3]}, nil))
	f.Add(signLines(f, station, lines[0], bytes.Replace(lines[1], []byte(`":`), []byte(`": `), 1)))
	f.Add([]byte("{}\n"))
	locked := lockedManifest(f)
	f.Add(locked)
	f.Add(bytes.Replace(locked, []byte(`"locks":"open"`), []byte(`"locks":"debug"`), 1))
	f.Fuzz(func(t *testing.T, in []byte) {
		ctx := context.Background()
		var verified []Record
		sum, err := Verify(ctx, bytes.NewReader(in), station.Public(), func(r Record) error {
			verified = append(verified, r)
			return nil
		})
		var inspected []Record
		isum, ierr := Inspect(ctx, bytes.NewReader(in), func(r Record) error {
			inspected = append(inspected, r)
			return nil
		})
		if err == nil {
			if ierr != nil {
				t.Fatalf("Verify accepted what Inspect refused: %v", ierr)
			}
			if out := rewrite(t, station, sum.Header, verified); !bytes.Equal(out, in) {
				t.Fatalf("accepted manifest is not what Writer makes of it:\n in: %q\nout: %q", in, out)
			}
		}
		if ierr == nil {
			checkReencoding(t, in, isum, inspected)
		}
	})
}

func rewrite(t *testing.T, station crypto.Signer, hdr Header, recs []Record) []byte {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, hdr, station)
	if err != nil {
		t.Fatalf("NewWriter refused an accepted header: %v", err)
	}
	for _, r := range recs {
		if err := w.Add(context.Background(), r); err != nil {
			t.Fatalf("Add refused an accepted record: %v", err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func checkReencoding(t *testing.T, in []byte, sum Summary, recs []Record) {
	spki, err := sigalg.MarshalPublicKey(sum.Header.StationPublicKey)
	if err != nil {
		t.Fatal(err)
	}
	body, err := encodeLine(sum.Header.toWire(spki))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		line, err := encodeLine(r.toWire())
		if err != nil {
			t.Fatal(err)
		}
		body = append(body, line...)
	}
	rest, ok := bytes.CutPrefix(in, body)
	if !ok {
		t.Fatalf("accepted input does not re-encode to itself:\n in: %q\nout: %q", in, body)
	}
	if !bytes.HasPrefix(rest, trailerPrefix) || bytes.IndexByte(rest, '\n') != len(rest)-1 {
		t.Fatalf("accepted input ends in %q, not one trailer line", rest)
	}
	if sum.Count != len(recs) {
		t.Fatalf("summary counts %d records, %d delivered", sum.Count, len(recs))
	}
}

// FuzzRecordLine fuzzes one record line, where mutations reach the field
// checks without first having to match a digest. Properties: no panic in
// decoding or in the key and proof checks; an accepted line re-encodes to
// itself.
func FuzzRecordLine(f *testing.F) {
	data, _ := smallManifest(f)
	lines := splitLines(data)
	f.Add(lines[1])
	f.Add(lines[2])
	f.Add(lines[0])
	f.Add(lines[3])
	locked := splitLines(lockedManifest(f))
	f.Add(locked[1])
	f.Add(locked[2])
	f.Add(bytes.Replace(locked[1], []byte(`debug,key-store-window`), []byte(`key-store-window,debug`), 1))
	f.Add(bytes.Replace(locked[2], []byte(`"locks":"open"`), []byte(`"locks":""`), 1))
	f.Fuzz(func(t *testing.T, line []byte) {
		rec, err := decodeRecord(line)
		if err != nil {
			return
		}
		again, err := encodeLine(rec.toWire())
		if err != nil || !bytes.Equal(again, line) {
			t.Fatalf("accepted line re-encodes differently: %q vs %q (%v)", line, again, err)
		}
		_ = checkRecord(&rec)
	})
}
