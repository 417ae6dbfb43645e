package evidence

import (
	"archive/tar"
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hallmark-iot/hallmark/internal/audit/chain"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

var errBadHash = errors.New("want 64 lowercase hex digits")

// packWriter writes members to a tar stream with fixed headers (mode,
// owner, time), so the same records always give the same bytes, and
// remembers each member's hash for the manifest.
type packWriter struct {
	tw      *tar.Writer
	created time.Time
	members []Member
	names   map[string]bool
}

func newPackWriter(w io.Writer, created time.Time) *packWriter {
	return &packWriter{tw: tar.NewWriter(w), created: created.UTC().Truncate(time.Second), names: map[string]bool{}}
}

func (p *packWriter) header(name string, size int64) error {
	if err := checkName(name); err != nil {
		return err
	}
	if p.names[name] {
		return fmt.Errorf("member %s written twice", name)
	}
	if len(p.members) >= MaxMembers {
		return fmt.Errorf("%w: more than %d members", ErrTooLarge, MaxMembers)
	}
	if size > MaxMemberSize {
		return fmt.Errorf("%w: member %s of %d bytes", ErrTooLarge, name, size)
	}
	p.names[name] = true
	return p.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644,
		ModTime: p.created, Format: tar.FormatPAX})
}

// add writes a member held in memory.
func (p *packWriter) add(name string, data []byte) error {
	if err := p.header(name, int64(len(data))); err != nil {
		return err
	}
	if _, err := p.tw.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	sum := sha256.Sum256(data)
	p.members = append(p.members, Member{Name: name, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])})
	return nil
}

// addJSON writes v as an indented JSON member.
func (p *packWriter) addJSON(name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	return p.add(name, append(b, '\n'))
}

// addStream copies size bytes from r into a member, hashing as it goes.
func (p *packWriter) addStream(name string, size int64, r io.Reader) error {
	if err := p.header(name, size); err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(p.tw, h), io.LimitReader(r, size))
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if n != size {
		return fmt.Errorf("write %s: %d of %d bytes", name, n, size)
	}
	p.members = append(p.members, Member{Name: name, Size: size, SHA256: hex.EncodeToString(h.Sum(nil))})
	return nil
}

// finish writes MANIFEST.json and its signature by key, the audit key,
// and closes the archive.
func (p *packWriter) finish(key crypto.Signer) error {
	suite, err := sigalg.SuiteOf(key)
	if err != nil {
		return fmt.Errorf("audit key: %w", err)
	}
	id, err := chain.KeyID(key.Public())
	if err != nil {
		return err
	}
	m := Manifest{Format: Format, Created: p.created.Format(time.RFC3339), KeyID: id, Alg: string(suite.ID()), Members: p.members}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", " ")
	if err := enc.Encode(m); err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	sig, err := sigalg.Sign(key, SignedMessage(buf.Bytes()))
	if err != nil {
		return fmt.Errorf("sign evidence pack: %w", err)
	}
	members := p.members
	if err := p.add(MemberManifest, buf.Bytes()); err != nil {
		return err
	}
	if err := p.add(MemberSignature, sig); err != nil {
		return err
	}
	p.members = members
	return p.tw.Close()
}
