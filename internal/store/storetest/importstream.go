package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// sliceSource is a DeviceSource over a slice, failing with fail after
// failAfter devices when fail is set, and counting what was read.
type sliceSource struct {
	devices   []store.Device
	digest    [32]byte
	fail      error
	failAfter int
	read      int
	ended     bool
}

func (s *sliceSource) Next() (store.Device, error) {
	if s.fail != nil && s.read == s.failAfter {
		return store.Device{}, s.fail
	}
	if s.read == len(s.devices) {
		s.ended = true
		return store.Device{}, io.EOF
	}
	s.read++
	return s.devices[s.read-1], nil
}

func (s *sliceSource) Digest() [32]byte {
	if !s.ended {
		// A store that read the digest before the end would store a
		// digest the manifest has not vouched for yet.
		return [32]byte{}
	}
	return s.digest
}

var errSourceFailed = errors.New("the manifest failed verification")

// testImportBatchStream checks ImportBatchStream against ImportBatch's
// contract: the same rows, the same refusals leaving nothing behind, and
// a source's error rolling back the rows inserted before it.
func testImportBatchStream(t *testing.T, f *fixture) {
	first := makeDevices("batch-1", 30)
	b1 := f.batch("batch-1", "manifest-1")
	src := &sliceSource{devices: first, digest: b1.ManifestDigest}
	input := b1
	input.ManifestDigest, input.DeviceCount = sha256.Sum256([]byte("ignored")), 999
	res, err := f.s.ImportBatchStream(f.ctx, input, src)
	if err != nil || res.Imported != len(first) || res.AlreadyImported || len(res.Duplicates) != 0 {
		t.Fatalf("ImportBatchStream = %+v, %v; want all imported", res, err)
	}
	got, err := f.s.GetBatch(f.ctx, b1.ID)
	must(t, err)
	want := b1
	want.DeviceCount = len(first)
	equal(t, "GetBatch", got, want)
	for _, d := range first {
		got, err := f.s.GetDevice(f.ctx, d.Identity)
		must(t, err)
		equal(t, "GetDevice", got, imported(d, b1))
	}

	before := f.allDevices(t)
	fresh := makeDevices("batch-2", 20)
	cancelled, cancel := context.WithCancel(f.ctx)
	cancel()
	unknownStation, unknownProduct := f.batch("batch-2", "m2"), f.batch("batch-2", "m2")
	unknownStation.StationID = identity.ID{9}
	unknownProduct.ProductID = "no-such-product"
	for _, c := range []struct {
		name     string
		ctx      context.Context
		b        store.Batch
		src      *sliceSource
		want     store.ImportResult
		wantErr  error
		anyError bool
	}{
		{name: "same batch and digest", b: b1, src: &sliceSource{devices: first, digest: b1.ManifestDigest},
			want: store.ImportResult{AlreadyImported: true}},
		{name: "same batch, other digest", b: b1, src: &sliceSource{devices: first, digest: sha256.Sum256([]byte("other"))},
			wantErr: store.ErrConflict},
		{name: "same batch, source fails", b: b1, src: &sliceSource{devices: first, fail: errSourceFailed, failAfter: 29},
			wantErr: errSourceFailed},
		{
			name: "duplicates from another batch", b: f.batch("batch-2", "m2"),
			src:  &sliceSource{devices: append(slices.Clone(fresh), first[7], first[3], first[7]), digest: sha256.Sum256([]byte("m2"))},
			want: store.ImportResult{Duplicates: []identity.ID{first[7].Identity, first[3].Identity}},
		},
		{
			name: "duplicate within the import", b: f.batch("batch-2", "m2"),
			src:  &sliceSource{devices: append(slices.Clone(fresh), fresh[4]), digest: sha256.Sum256([]byte("m2"))},
			want: store.ImportResult{Duplicates: []identity.ID{fresh[4].Identity}},
		},
		{
			// Rows before the failure were written: all must be gone.
			name: "source fails after some devices", b: f.batch("batch-2", "m2"),
			src:     &sliceSource{devices: fresh, fail: errSourceFailed, failAfter: 15},
			wantErr: errSourceFailed,
		},
		{name: "source fails at the end", b: f.batch("batch-2", "m2"),
			src: &sliceSource{devices: fresh, fail: errSourceFailed, failAfter: len(fresh)}, wantErr: errSourceFailed},
		{name: "unknown station", b: unknownStation, src: &sliceSource{devices: fresh}, wantErr: store.ErrNotFound},
		{name: "unknown product", b: unknownProduct, src: &sliceSource{devices: fresh}, wantErr: store.ErrNotFound},
		{name: "cancelled context", ctx: cancelled, b: f.batch("batch-2", "m2"), src: &sliceSource{devices: fresh}, anyError: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := f.ctx
			if c.ctx != nil {
				ctx = c.ctx
			}
			res, err := f.s.ImportBatchStream(ctx, c.b, c.src)
			switch {
			case c.wantErr != nil:
				wantErr(t, "ImportBatchStream", err, c.wantErr)
			case c.anyError && err == nil:
				t.Fatalf("ImportBatchStream = %+v, want an error", res)
			case !c.anyError && err != nil:
				t.Fatalf("ImportBatchStream: %v", err)
			case !c.anyError:
				equal(t, "ImportResult", res, c.want)
				if !c.src.ended {
					t.Errorf("the store decided after reading %d of %d devices; want the whole source read", c.src.read, len(c.src.devices))
				}
			}
			f.checkUnchanged(t, before, b1, fresh)
		})
	}
	t.Run("refusals left nothing behind", func(t *testing.T) {
		b2 := f.batch("batch-2", "m2")
		res, err := f.s.ImportBatchStream(f.ctx, b2, &sliceSource{devices: fresh, digest: b2.ManifestDigest})
		if err != nil || res.Imported != len(fresh) {
			t.Fatalf("ImportBatchStream = %+v, %v", res, err)
		}
		got, err := f.s.GetDevice(f.ctx, fresh[4].Identity)
		must(t, err)
		equal(t, "GetDevice", got, imported(fresh[4], b2))
	})
	t.Run("empty batch", func(t *testing.T) {
		empty := f.batch("empty", "m-empty")
		res, err := f.s.ImportBatchStream(f.ctx, empty, &sliceSource{digest: empty.ManifestDigest})
		if err != nil || res.Imported != 0 || res.AlreadyImported {
			t.Fatalf("ImportBatchStream = %+v, %v", res, err)
		}
		got, err := f.s.GetBatch(f.ctx, empty.ID)
		must(t, err)
		equal(t, "GetBatch", got, empty)
	})
}
