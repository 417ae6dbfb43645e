package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// The wire structs fix the field order of each line. Every value is a
// string of a restricted alphabet (hex, base64, RFC 3339, enumerations) or
// an unsigned integer, so encoding/json never escapes anything and its
// output is the canonical form. A reader decodes a line, converts it to
// the typed value, encodes that again and compares the bytes: whatever
// JSON allows but the canonical form does not (spacing, duplicate or
// differently-cased keys, escapes, other number or base64 spellings) is
// refused by that one comparison.
type wireHeader struct {
	Format           string `json:"format"`
	Batch            string `json:"batch"`
	Station          string `json:"station"`
	StationAlgorithm string `json:"station_algorithm"`
	StationPublicKey string `json:"station_public_key"`
	Created          string `json:"created"`
}

type wireRecord struct {
	Seq         uint64 `json:"seq"`
	Identity    string `json:"identity"`
	Algorithm   string `json:"algorithm"`
	PublicKey   string `json:"public_key"`
	RootOfTrust string `json:"root_of_trust"`
	Injection   string `json:"injection"`
	Locks       string `json:"locks,omitempty"`
	Station     string `json:"station"`
	Time        string `json:"time"`
	Nonce       string `json:"nonce"`
	Proof       string `json:"proof"`
}

type wireTrailer struct {
	Count     uint64 `json:"count"`
	Digest    string `json:"digest"`
	Signature string `json:"signature"`
}

// trailerPrefix tells the trailer from a record: in canonical form a
// record starts with "seq" and the trailer with "count".
var trailerPrefix = []byte(`{"count":`)

// timeLayout is RFC 3339 in UTC to the second: one spelling per instant.
const timeLayout = "2006-01-02T15:04:05Z"

var batchPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// encodeLine marshals v and appends the newline.
func encodeLine(v any) ([]byte, error) {
	line, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	line = append(line, '\n')
	if len(line) > MaxLineSize {
		return nil, fmt.Errorf("%w: line of %d bytes exceeds %d", ErrMalformed, len(line), MaxLineSize)
	}
	return line, nil
}

// decodeLine decodes one canonical line into w, refusing unknown fields,
// trailing data and anything that does not re-encode to the same bytes.
func decodeLine(line []byte, w any, canonical func() ([]byte, error)) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(w); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	again, err := canonical()
	if err != nil {
		return err
	}
	if !bytes.Equal(again, line) {
		return fmt.Errorf("%w: line is not in canonical form", ErrMalformed)
	}
	return nil
}

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s, what string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %s %q is not RFC 3339 UTC to the second", ErrMalformed, what, s)
	}
	return t, nil
}

// checkTime keeps times inside the years RFC 3339 can write with four
// digits and after the Unix epoch, which no real batch precedes.
func checkTime(t time.Time, what string) error {
	if y := t.UTC().Year(); y < 1970 || y > 9999 {
		return fmt.Errorf("%w: %s in year %d", ErrMalformed, what, y)
	}
	return nil
}

func decodeBase64(s, what string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not standard base64", ErrMalformed, what)
	}
	return b, nil
}

func encodeBase64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// toHeader converts the header line, parsing the station key and checking
// that the header's station identity and algorithm are the key's. It
// returns the key's DER too, for the canonical re-encoding.
func (w *wireHeader) toHeader() (Header, []byte, error) {
	var h Header
	if w.Format != Format {
		return h, nil, fmt.Errorf("%w: format %q, want %q", ErrMalformed, w.Format, Format)
	}
	if !batchPattern.MatchString(w.Batch) {
		return h, nil, fmt.Errorf("%w: batch %q is not 1-%d characters of A-Z a-z 0-9 . _ -", ErrMalformed, w.Batch, MaxBatchLen)
	}
	h.Batch = w.Batch
	station, err := identity.Parse(w.Station)
	if err != nil {
		return h, nil, fmt.Errorf("%w: station: %w", ErrMalformed, err)
	}
	spki, err := decodeBase64(w.StationPublicKey, "station_public_key")
	if err != nil {
		return h, nil, err
	}
	pub, suite, err := sigalg.ParsePublicKeyWithSuite(spki)
	if err != nil {
		return h, nil, fmt.Errorf("%w: station_public_key: %w", ErrMalformed, err)
	}
	if string(suite.ID()) != w.StationAlgorithm {
		return h, nil, fmt.Errorf("%w: station_algorithm %q but the station key is %s", ErrMalformed, w.StationAlgorithm, suite.ID())
	}
	if identity.FromSPKI(spki) != station {
		return h, nil, fmt.Errorf("%w: station %s is not the SHA-256 of station_public_key", ErrMalformed, station)
	}
	h.Station, h.StationAlgorithm, h.StationPublicKey = station, suite.ID(), pub
	if h.Created, err = parseTime(w.Created, "created"); err != nil {
		return h, nil, err
	}
	return h, spki, checkTime(h.Created, "created")
}

func (h *Header) toWire(spki []byte) wireHeader {
	return wireHeader{
		Format:           Format,
		Batch:            h.Batch,
		Station:          h.Station.String(),
		StationAlgorithm: string(h.StationAlgorithm),
		StationPublicKey: encodeBase64(spki),
		Created:          formatTime(h.Created),
	}
}

func (r *Record) toWire() wireRecord {
	return wireRecord{
		Seq:         r.Seq,
		Identity:    r.Identity.String(),
		Algorithm:   string(r.Algorithm),
		PublicKey:   encodeBase64(r.SPKI),
		RootOfTrust: string(r.RootOfTrust),
		Injection:   string(r.Injection),
		Locks:       string(r.Locks),
		Station:     r.Station.String(),
		Time:        formatTime(r.Time),
		Nonce:       encodeBase64(r.Nonce),
		Proof:       encodeBase64(r.Proof),
	}
}

// toRecord converts the syntax of a record line: it decodes every field but
// leaves the public key unparsed and the proof unchecked, which checkRecord
// does, so that the costly part can run in parallel.
func (w *wireRecord) toRecord() (Record, error) {
	var r Record
	var err error
	r.Seq = w.Seq
	if r.Identity, err = identity.Parse(w.Identity); err != nil {
		return r, fmt.Errorf("%w: identity: %w", ErrMalformed, err)
	}
	suite, err := sigalg.Lookup(w.Algorithm)
	if err != nil || string(suite.ID()) != w.Algorithm {
		return r, fmt.Errorf("%w: algorithm %q (known: %v)", ErrMalformed, w.Algorithm, sigalg.Names())
	}
	r.Algorithm = suite.ID()
	if r.SPKI, err = decodeBase64(w.PublicKey, "public_key"); err != nil {
		return r, err
	}
	r.RootOfTrust, r.Injection = RootOfTrust(w.RootOfTrust), Injection(w.Injection)
	if err := checkProvenance(r.RootOfTrust, r.Injection); err != nil {
		return r, err
	}
	if r.Locks, err = parseLocks(w.Locks); err != nil {
		return r, err
	}
	if r.Station, err = identity.Parse(w.Station); err != nil {
		return r, fmt.Errorf("%w: station: %w", ErrMalformed, err)
	}
	if r.Time, err = parseTime(w.Time, "time"); err != nil {
		return r, err
	}
	if err := checkTime(r.Time, "time"); err != nil {
		return r, err
	}
	if r.Nonce, err = decodeBase64(w.Nonce, "nonce"); err != nil {
		return r, err
	}
	if r.Proof, err = decodeBase64(w.Proof, "proof"); err != nil {
		return r, err
	}
	return r, checkSizes(&r, suite)
}

// checkProvenance allows the root-of-trust and injection pairs that can
// happen: only an injected key was injected, and it was injected somehow.
func checkProvenance(rot RootOfTrust, inj Injection) error {
	switch rot {
	case PUF, Keygen, TPM:
		if inj != NotInjected {
			return fmt.Errorf("%w: injection %q for a %s device, want %q", ErrMalformed, inj, rot, NotInjected)
		}
	case Inject:
		if inj != Encrypted && inj != Clear {
			return fmt.Errorf("%w: injection %q for an injected key, want %q or %q", ErrMalformed, inj, Encrypted, Clear)
		}
	default:
		return fmt.Errorf("%w: root_of_trust %q, want %q, %q, %q or %q", ErrMalformed, rot, PUF, Keygen, Inject, TPM)
	}
	return nil
}

// parseLocks reads the locks field: absent, "open", or lock names in their
// canonical order without repeats. An empty field written out ("locks":"")
// is refused by the canonical comparison, as omitempty drops it.
func parseLocks(s string) (Locks, error) {
	if s == "" || s == string(LocksOpen) {
		return Locks(s), nil
	}
	next := 0
	for name := range strings.SplitSeq(s, ",") {
		i := slices.Index(lockNames, name)
		if i < next {
			return "", fmt.Errorf("%w: locks %q: want %q, or names from %q in that order", ErrMalformed, s, LocksOpen, LocksClosed)
		}
		next = i + 1
	}
	return Locks(s), nil
}

func checkSizes(r *Record, suite sigalg.Suite) error {
	if n := len(r.Nonce); n < MinNonce || n > MaxNonce {
		return fmt.Errorf("%w: nonce of %d bytes, want %d to %d", ErrMalformed, n, MinNonce, MaxNonce)
	}
	if n := len(r.Proof); n == 0 || n > suite.SignatureSize() {
		return fmt.Errorf("%w: proof of %d bytes, want 1 to %d for %s", ErrMalformed, n, suite.SignatureSize(), suite.ID())
	}
	if len(r.SPKI) > sigalg.MaxKeyDER {
		return fmt.Errorf("%w: public key of %d bytes", ErrMalformed, len(r.SPKI))
	}
	return nil
}

// checkRecord does the costly checks of a record: its key parses (strictly,
// weak keys refused), is of its algorithm, hashes to its identity, and
// signed its proof of possession.
func checkRecord(r *Record) error {
	pub, suite, err := sigalg.ParsePublicKeyWithSuite(r.SPKI)
	if err != nil {
		return fmt.Errorf("%w: public_key: %w", ErrMalformed, err)
	}
	if suite.ID() != r.Algorithm {
		return fmt.Errorf("%w: algorithm %s but the public key is %s", ErrMalformed, r.Algorithm, suite.ID())
	}
	if identity.FromSPKI(r.SPKI) != r.Identity {
		return fmt.Errorf("%w: identity %s is not the SHA-256 of the public key", ErrProof, r.Identity)
	}
	r.PublicKey = pub
	msg := identity.ProofMessage(identity.FactoryProofContext, r.Nonce, r.Identity)
	if err := suite.Verify(pub, msg, r.Proof); err != nil {
		return fmt.Errorf("%w: device %s: %w", ErrProof, r.Identity, err)
	}
	return nil
}

func (t *wireTrailer) decode() (count uint64, digest [32]byte, sig []byte, err error) {
	raw, err := hex.DecodeString(t.Digest)
	if err != nil || len(raw) != sha256.Size {
		return 0, digest, nil, fmt.Errorf("%w: trailer digest is not 64 hex characters", ErrMalformed)
	}
	copy(digest[:], raw)
	if sig, err = decodeBase64(t.Signature, "trailer signature"); err != nil {
		return 0, digest, nil, err
	}
	return t.Count, digest, sig, nil
}

// signedMessage is what the station signs: the context and the digest of
// every byte before the trailer.
func signedMessage(digest [32]byte) []byte {
	return append([]byte(SignatureContext), digest[:]...)
}

// MarshalJSON writes the header as its manifest line (without the
// newline), for tools that display a manifest as JSON.
func (h Header) MarshalJSON() ([]byte, error) {
	spki, err := sigalg.MarshalPublicKey(h.StationPublicKey)
	if err != nil {
		return nil, fmt.Errorf("marshal manifest header: %w", err)
	}
	return json.Marshal(h.toWire(spki))
}

// MarshalJSON writes the record as its manifest line (without the
// newline).
func (r Record) MarshalJSON() ([]byte, error) {
	if r.SPKI == nil && r.PublicKey != nil {
		spki, err := sigalg.MarshalPublicKey(r.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("marshal manifest record: %w", err)
		}
		r.SPKI = spki
	}
	return json.Marshal(r.toWire())
}
