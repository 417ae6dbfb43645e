package station

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sort"

	"github.com/hallmark-iot/hallmark/internal/atomicfile"
	"github.com/hallmark-iot/hallmark/internal/manifest"
)

// writeManifest writes the batch's manifest from the journal, in sequence
// order, signed by the station key. It runs only once every device is
// recorded, and replaces the file atomically, so a manifest on disk is
// always complete.
func (st *station) writeManifest(ctx context.Context) (*Summary, error) {
	seqs := make([]int, 0, len(st.journal.entries))
	for seq := range st.journal.entries {
		seqs = append(seqs, seq)
	}
	if len(seqs) != st.info.Count {
		return nil, fmt.Errorf("station: %d of %d devices recorded", len(seqs), st.info.Count)
	}
	sort.Ints(seqs)
	sum := &Summary{BatchID: st.info.BatchID, ByKind: map[string]int{}, Manifest: filepath.Join(st.cfg.Dir, ManifestFile)}
	hdr := manifest.Header{Batch: st.info.BatchID, Created: st.info.Created}
	err := atomicfile.WriteFunc(sum.Manifest, 0o644, func(w io.Writer) error {
		mw, err := manifest.NewWriter(w, hdr, st.signer)
		if err != nil {
			return err
		}
		for _, seq := range seqs {
			e := st.journal.entries[seq]
			if e.Device == nil {
				sum.Rejected++
				sum.Rejection = append(sum.Rejection, fmt.Sprintf("device %d: %s", seq, e.Rejected))
				continue
			}
			if err := mw.Add(ctx, manifestRecord(e.Device)); err != nil {
				return fmt.Errorf("device %d: %w", seq, err)
			}
			sum.Enrolled++
			if !manifest.Locks(e.Device.Locks).Closed() {
				sum.LeftOpen++
			}
			sum.ByKind[st.info.Plan.KindOf(seq).String()]++
		}
		return mw.Close()
	})
	if err != nil {
		return nil, fmt.Errorf("write manifest: %w", err)
	}
	return sum, nil
}

func manifestRecord(r *Record) manifest.Record {
	return manifest.Record{
		Identity: r.Identity, Algorithm: r.Algorithm, SPKI: r.PublicKey,
		RootOfTrust: manifest.RootOfTrust(r.Class), Injection: manifest.Injection(r.Injection),
		Locks: manifest.Locks(r.Locks), Time: r.Time, Nonce: r.Nonce, Proof: r.Proof,
	}
}
