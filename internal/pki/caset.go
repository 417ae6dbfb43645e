package pki

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// ErrUnknownCA reports a CA name the set does not hold.
var ErrUnknownCA = errors.New("no such CA")

// caNamePattern is what a CA of a set may be called: its suite's name,
// lower case, so that it is a safe directory name, key-name prefix and
// URL path segment.
var caNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// maxSetCAs bounds the CAs of one set: a few suites, not a directory of
// anything.
const maxSetCAs = 8

// SetConfig configures OpenSet.
type SetConfig struct {
	// Config is the first CA's configuration; Name, the validities,
	// RevocationBaseURL and Now apply to every CA of the set.
	Config
	// Dir is the first CA's directory, laid out as Open's.
	Dir string
	// MoreDir holds the further CAs, one subdirectory each named after
	// the CA. Every CA found there is loaded, whether Suites names it or
	// not: certificates it issued must stay verifiable and revocable.
	MoreDir string
	// Suites are suites the set must have a CA of: a missing one is
	// created in MoreDir, named after its suite. The first CA counts.
	Suites []sigalg.ID
}

// CASet is the platform's CAs: the first one, which also serves TLS and
// whose layout is that of a CA opened alone, and further CAs of other
// suites, each issuing device certificates only (docs/pki.md, "Several
// CAs"). A CA is named after its suite. The set does not change once
// opened and is safe for concurrent use.
type CASet struct {
	cas []*CA // the first CA first, then the others by name
	// bySKI finds the CA whose issuing CA has a subject key identifier.
	bySKI map[string]*CA
}

// OpenSet opens the first CA in cfg.Dir (creating it on first start, as
// Open does), loads every CA in cfg.MoreDir, and creates in MoreDir a CA
// for each suite of cfg.Suites the set lacks. Keys of a further CA live
// in the same key manager, named "<CA name>." + KeyRoot and so on.
func OpenSet(ctx context.Context, km keys.Manager, cfg SetConfig) (*CASet, error) {
	first, err := Open(ctx, km, cfg.Dir, cfg.Config)
	if err != nil {
		return nil, err
	}
	set := &CASet{cas: []*CA{first}, bySKI: map[string]*CA{}}
	names, err := memberDirs(cfg.MoreDir)
	if err != nil {
		return nil, err
	}
	for _, s := range cfg.Suites {
		suite, err := s.Suite()
		if err != nil {
			return nil, fmt.Errorf("open CA set: %w", err)
		}
		if id := string(suite.ID()); id != string(first.Suite()) && !slices.Contains(names, id) {
			names = append(names, id)
		}
	}
	slices.Sort(names)
	if len(names)+1 > maxSetCAs {
		return nil, fmt.Errorf("open CA set: %d CAs, at most %d", len(names)+1, maxSetCAs)
	}
	for _, name := range names {
		if cfg.MoreDir == "" {
			return nil, errors.New("open CA set: further CAs need a directory")
		}
		mc := cfg.Config
		// A further CA is named after its suite, and is of it.
		mc.member, mc.Suite = name, sigalg.ID(name)
		if name == string(first.Suite()) {
			return nil, fmt.Errorf("open CA set: %w: %s holds a CA of the first CA's suite %s", ErrCAMismatch, cfg.MoreDir, name)
		}
		ca, err := Open(ctx, km, filepath.Join(cfg.MoreDir, name), mc)
		if err != nil {
			return nil, fmt.Errorf("open CA %s: %w", name, err)
		}
		set.cas = append(set.cas, ca)
	}
	for _, ca := range set.cas {
		ski := string(ca.issuing.SubjectKeyId)
		if set.bySKI[ski] != nil {
			return nil, fmt.Errorf("open CA set: %w: two CAs share an issuing key", ErrCAMismatch)
		}
		set.bySKI[ski] = ca
	}
	return set, nil
}

// memberDirs lists the CA directories in dir: subdirectories whose name
// is a suite Hallmark knows. Anything else there is refused rather than
// ignored, so that a mistyped copy is noticed.
func memberDirs(dir string) ([]string, error) {
	if dir == "" {
		return nil, nil
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open CA set: %w", err)
	}
	var names []string
	for _, e := range entries {
		suite, err := sigalg.ID(e.Name()).Suite()
		if !e.IsDir() || err != nil || string(suite.ID()) != e.Name() {
			return nil, fmt.Errorf("open CA set: %s: %q is not a CA directory named after its suite", dir, e.Name())
		}
		names = append(names, e.Name())
	}
	return names, nil
}

// First is the set's first CA: the one products without an issuing CA
// use and the one that serves TLS.
func (s *CASet) First() *CA { return s.cas[0] }

// All is every CA, the first one first, then the others by name.
func (s *CASet) All() []*CA { return slices.Clone(s.cas) }

// Name is the CA's name in the set: its suite.
func (ca *CA) Name() string { return string(ca.Suite()) }

// Get returns the CA named name ("" is the first CA). A CA is named after
// its suite, so either is accepted.
func (s *CASet) Get(name string) (*CA, error) {
	if name == "" {
		return s.cas[0], nil
	}
	for _, ca := range s.cas {
		if ca.Name() == name {
			return ca, nil
		}
	}
	return nil, fmt.Errorf("%w %q (the platform has %s)", ErrUnknownCA, name, s.names())
}

func (s *CASet) names() string {
	var out []byte
	for i, ca := range s.cas {
		if i > 0 {
			out = append(out, ", "...)
		}
		out = append(out, ca.Name()...)
	}
	return string(out)
}

// ByIssuer returns the CA whose issuing CA signed cert, by its authority
// key identifier, or nil.
func (s *CASet) ByIssuer(cert *x509.Certificate) *CA {
	ca := s.bySKI[string(cert.AuthorityKeyId)]
	if ca == nil || !bytes.Equal(cert.RawIssuer, ca.issuing.RawSubject) {
		return nil
	}
	return ca
}

// VerifyDevice is CA.VerifyDevice against the CA that issued the leaf,
// found by its authority key identifier: a device of any CA of the set
// authenticates, and only one chain is ever checked.
func (s *CASet) VerifyDevice(chain [][]byte, now time.Time) (*x509.Certificate, identity.ID, error) {
	if len(chain) == 0 {
		return nil, identity.ID{}, fmt.Errorf("verify device: %w: no certificate", ErrUntrusted)
	}
	key := sha256.Sum256(chain[0])
	ca := s.cas[0]
	if len(s.cas) > 1 {
		// A leaf one of the CAs verified lately is that CA's: answered
		// without parsing it to find its issuer.
		for _, c := range s.cas {
			if v, ok := c.verified.get(key, now); ok {
				return v.leaf, v.id, nil
			}
		}
		leaf, err := parseCert(chain[0])
		if err != nil {
			return nil, identity.ID{}, fmt.Errorf("verify device: %w", err)
		}
		if ca = s.ByIssuer(leaf.Certificate); ca == nil {
			return nil, identity.ID{}, fmt.Errorf("verify device: %w: issued by none of the platform's CAs", ErrUntrusted)
		}
	}
	return ca.verifyDevice(key, chain, now)
}

// TrustBundle is what a device of a product issued by ca trusts, in PEM:
// ca's root, which anchors its own certificate, then what anchors the
// platform's TLS server certificate — the first CA's root, or its ECDSA
// TLS root when the first CA is ML-DSA (decision 0004). For the first
// CA itself it is RootPEM.
func (s *CASet) TrustBundle(ca *CA) []byte {
	first := s.cas[0]
	if ca == first {
		return first.RootPEM()
	}
	out := encodePEM(ca.root.Raw)
	if first.tlsIssuer == first.issuing {
		return append(out, encodePEM(first.root.Raw)...)
	}
	return append(out, encodePEM(first.tlsIssuer.Raw)...)
}
