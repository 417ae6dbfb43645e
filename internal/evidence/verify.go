package evidence

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hallmark-iot/hallmark/internal/audit/chain"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// MemberError names the member that failed verification and what failed.
type MemberError struct {
	Member string // "" for the archive as a whole
	Reason string
}

func (e *MemberError) Error() string {
	if e.Member == "" {
		return fmt.Sprintf("evidence pack: %s", e.Reason)
	}
	return fmt.Sprintf("evidence pack: member %s: %s", e.Member, e.Reason)
}

// Unwrap makes every MemberError an ErrPack.
func (e *MemberError) Unwrap() error { return ErrPack }

func fail(member, format string, args ...any) error {
	return &MemberError{Member: member, Reason: fmt.Sprintf(format, args...)}
}

// Options are the verifier's optional inputs.
type Options struct {
	// Trust is the platform's published trust bundle (PEM): every CA root
	// in the pack must be one of its certificates. Nil skips the check.
	Trust []byte
	// Manifests are original station-signed manifest files by batch name:
	// each is verified with its station's key from the pack, its digest
	// compared with the batch record, and every device of the batch found
	// in it with the same key and attributes.
	Manifests map[string][]byte
}

// Report is what a pack that verified holds.
type Report struct {
	Pack                                                   Pack
	Members, Devices, Certificates, Firmware, AuditEntries int
	Manifests                                              int // original manifests checked (Options.Manifests)
}

// Verify checks the pack read from r (its size bytes) with pub, the
// platform's audit key, and nothing else. The first pass reads the
// archive's structure and hashes every member, then checks the signature
// over MANIFEST.json and the hashes, before any member is parsed; the
// second checks what the members say. Memory: one member at a time (a
// firmware image at most) and the registry records of the pack.
func Verify(ctx context.Context, r io.ReaderAt, size int64, pub crypto.PublicKey, opts Options) (*Report, error) {
	m, err := checkManifest(io.NewSectionReader(r, 0, size), pub)
	if err != nil {
		return nil, err
	}
	v := newContentVerifier(pub, opts)
	if err := v.run(ctx, io.NewSectionReader(r, 0, size), m); err != nil {
		return nil, err
	}
	return v.report(len(m.Members)), nil
}

// seen is one member as the first pass found it.
type seen struct {
	name string
	size int64
	sum  string
}

// scanArchive walks the tar stream, checking each header, and hashes
// every member; it keeps MANIFEST.json and MANIFEST.sig.
func scanArchive(r io.Reader) (members []seen, manifest, sig []byte, err error) {
	tr := tar.NewReader(r)
	names := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return members, manifest, sig, nil
		}
		if err != nil {
			return nil, nil, nil, fail("", "not a readable tar archive after %d members: %v", len(members), err)
		}
		if err := checkHeader(h, names, len(members)); err != nil {
			return nil, nil, nil, err
		}
		hash := sha256.New()
		var keep *bytes.Buffer
		if h.Name == MemberManifest || h.Name == MemberSignature {
			keep = &bytes.Buffer{}
		}
		w := io.Writer(hash)
		if keep != nil {
			w = io.MultiWriter(hash, keep)
		}
		if _, err := io.Copy(w, tr); err != nil {
			return nil, nil, nil, fail(h.Name, "truncated: %v", err)
		}
		members = append(members, seen{name: h.Name, size: h.Size, sum: hex.EncodeToString(hash.Sum(nil))})
		switch h.Name {
		case MemberManifest:
			manifest = keep.Bytes()
		case MemberSignature:
			sig = keep.Bytes()
		}
	}
}

func checkHeader(h *tar.Header, names map[string]bool, n int) error {
	switch {
	case h.Typeflag != tar.TypeReg:
		return fail(h.Name, "not a regular file (type %q)", h.Typeflag)
	case checkName(h.Name) != nil:
		return fail("", "member name %q is not allowed", h.Name)
	case names[h.Name]:
		return fail(h.Name, "appears twice")
	case n >= MaxMembers+2:
		return fail(h.Name, "more than %d members", MaxMembers)
	case h.Size < 0 || h.Size > MaxMemberSize:
		return fail(h.Name, "%d bytes exceeds the %d-byte limit", h.Size, MaxMemberSize)
	case h.Name == MemberManifest && h.Size > MaxManifest:
		return fail(h.Name, "%d bytes exceeds the %d-byte limit", h.Size, MaxManifest)
	case h.Name == MemberSignature && h.Size > 16<<10:
		return fail(h.Name, "%d bytes is not a signature", h.Size)
	}
	names[h.Name] = true
	return nil
}

// checkManifest is the first pass: the signature over MANIFEST.json, then
// every member against it.
func checkManifest(r io.Reader, pub crypto.PublicKey) (*Manifest, error) {
	members, raw, sig, err := scanArchive(r)
	if err != nil {
		return nil, err
	}
	n := len(members)
	if n < 2 || members[n-2].name != MemberManifest || members[n-1].name != MemberSignature {
		return nil, fail(MemberManifest, "missing: a pack ends with %s and %s", MemberManifest, MemberSignature)
	}
	m, err := parseManifest(raw)
	if err != nil {
		return nil, err
	}
	if err := checkSignature(m, raw, sig, pub); err != nil {
		return nil, err
	}
	return m, compareMembers(m.Members, members[:n-2])
}

func parseManifest(raw []byte) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fail(MemberManifest, "does not parse: %v", err)
	}
	if dec.More() {
		return nil, fail(MemberManifest, "trailing data")
	}
	if m.Format != Format {
		return nil, fail(MemberManifest, "format %q, want %q", m.Format, Format)
	}
	return &m, nil
}

func checkSignature(m *Manifest, raw, sig []byte, pub crypto.PublicKey) error {
	suite, err := sigalg.SuiteOf(pub)
	if err != nil {
		return fail("", "audit key: %v", err)
	}
	id, err := chain.KeyID(pub)
	if err != nil {
		return fail("", "audit key: %v", err)
	}
	if m.KeyID != id || m.Alg != string(suite.ID()) {
		return fail(MemberSignature, "the pack names key %.16s… (%s), not the audit key given", m.KeyID, m.Alg)
	}
	if err := suite.Verify(pub, SignedMessage(raw), sig); err != nil {
		return fail(MemberSignature, "signature over %s does not verify with the audit key", MemberManifest)
	}
	return nil
}

// compareMembers checks that the archive holds exactly the listed
// members, in order, with the listed sizes and hashes.
func compareMembers(want []Member, got []seen) error {
	listed := make(map[string]bool, len(want))
	for _, w := range want {
		listed[w.Name] = true
	}
	present := make(map[string]bool, len(got))
	for _, g := range got {
		present[g.name] = true
		if !listed[g.name] {
			return fail(g.name, "not listed in %s (an extra member)", MemberManifest)
		}
	}
	for _, w := range want {
		if !present[w.Name] {
			return fail(w.Name, "listed in %s but missing from the archive", MemberManifest)
		}
	}
	if len(want) != len(got) {
		return fail(MemberManifest, "lists a member twice")
	}
	for i, w := range want {
		g := got[i]
		switch {
		case g.name != w.Name:
			return fail(g.name, "out of order: %s lists %s here", MemberManifest, w.Name)
		case g.size != w.Size || g.sum != w.SHA256:
			return fail(g.name, "SHA-256 %s does not match %s's %s", g.sum, MemberManifest, w.SHA256)
		}
	}
	return nil
}

// readMember reads the current member, at most limit bytes.
func readMember(tr *tar.Reader, h *tar.Header, limit int64) ([]byte, error) {
	if h.Size > limit {
		return nil, fail(h.Name, "%d bytes exceeds the %d-byte limit for this member", h.Size, limit)
	}
	b, err := io.ReadAll(io.LimitReader(tr, limit))
	if err != nil {
		return nil, fail(h.Name, "read: %v", err)
	}
	return b, nil
}

// decodeStrict decodes one JSON value, refusing unknown fields and
// trailing data.
func decodeStrict(name string, b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fail(name, "does not parse: %v", err)
	}
	if dec.More() {
		return fail(name, "trailing data")
	}
	return nil
}

// at is when a certificate is checked: the moment it was issued, since a
// pack is evidence of history, not of today's validity.
func at(t time.Time) time.Time { return t.Add(time.Second) }

// memberDir splits "devices/<id>/x" into "<id>" and "x".
func memberDir(name, prefix string) (dir, file string, ok bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return "", "", false
	}
	return strings.Cut(rest, "/")
}
