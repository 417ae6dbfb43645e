package app

import (
	"context"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/pki"
)

// Several CAs (docs/pki.md, "Several CAs"): the first CA in DataDir/ca,
// as it always was, and one CA per further suite in DataDir/cas/<suite>,
// made at start for each suite of Config.CASuites it lacks. The set is
// fixed while the platform runs, so verification and revocation need no
// locking, and replicas started with the same flags agree on it: the
// first replica creates what is missing under the data directory's init
// lock, the others load it.

// MoreCADir is the data directory's subdirectory of the further CAs.
const MoreCADir = "cas"

// checkCASuites canonicalises Config.CASuites and refuses a suite the
// platform does not offer, or one named twice.
func (c *Config) checkCASuites() error {
	var out []string
	for _, id := range c.CASuites {
		suite, err := checkCASuite(id)
		if err != nil {
			return err
		}
		if slices.Contains(out, string(suite)) {
			return fmt.Errorf("serve: CA suite %s named twice", suite)
		}
		out = append(out, string(suite))
		c.CASuites[len(out)-1] = suite
	}
	return nil
}

// openCAs opens the CA set with km.
func (p *Platform) openCAs(ctx context.Context, km keys.Manager) error {
	set, err := pki.OpenSet(ctx, km, pki.SetConfig{
		Config: pki.Config{Suite: p.cfg.CASuite, Now: p.cfg.Now, RevocationBaseURL: p.cfg.RevocationBaseURL},
		Dir:    filepath.Join(p.cfg.DataDir, CADir), MoreDir: filepath.Join(p.cfg.DataDir, MoreCADir), Suites: p.cfg.CASuites})
	if err != nil {
		return fmt.Errorf("CA: %w", err)
	}
	p.CAs, p.CA = set, set.First()
	for _, ca := range set.All()[1:] {
		p.cfg.Log.Info("CA loaded", "ca", ca.Name(), "issuing", ca.IssuingCertificate().Subject.CommonName)
	}
	return nil
}

// CAInfo describes one of the platform's CAs (GET /v1/admin/cas).
type CAInfo struct {
	// Name is what a product's issuing_ca names: the CA's suite.
	Name  string
	Suite string
	// First: the CA of products that name none, and of the platform's
	// TLS certificate.
	First bool
	// Subject, SKI (hex) and NotAfter are the issuing CA's.
	Subject  string
	SKI      string
	NotAfter time.Time
	// RootSubject is the root's common name.
	RootSubject string
	// CRLURL and OCSPURL are what its device certificates carry, "" when
	// revocation is not published.
	CRLURL, OCSPURL string
}

// ListCAs describes the platform's CAs, the first one first.
func (p *Platform) ListCAs() []CAInfo {
	var out []CAInfo
	for i, ca := range p.CAs.All() {
		iss := ca.IssuingCertificate()
		out = append(out, CAInfo{Name: ca.Name(), Suite: string(ca.Suite()), First: i == 0, Subject: iss.Subject.CommonName,
			SKI: hex.EncodeToString(iss.SubjectKeyId), NotAfter: iss.NotAfter.UTC(), RootSubject: ca.RootCertificate().Subject.CommonName,
			CRLURL: ca.CRLURL(), OCSPURL: ca.OCSPURL()})
	}
	return out
}

// hasCA is admin's check of a product's issuing CA.
func (p *Platform) hasCA(name string) error {
	_, err := p.CAs.Get(name)
	return err
}

// caList is ListCAs for GET /v1/admin/cas.
func (p *Platform) caList() []httpapi.CA {
	var out []httpapi.CA
	for _, c := range p.ListCAs() {
		out = append(out, httpapi.CA{Name: c.Name, Suite: c.Suite, First: c.First, Subject: c.Subject, RootSubject: c.RootSubject,
			SKI: c.SKI, NotAfter: c.NotAfter, CRLURL: c.CRLURL, OCSPURL: c.OCSPURL})
	}
	return out
}
