package revocation

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/keys/softkms"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// severalCAs is a CA set of an ECDSA P-256 first CA and an ML-DSA-65 one
// over one registry, which lists both CAs' revocations together.
type severalCAs struct {
	set      *pki.CASet
	revoked  *memSource
	certs    *certSource
	ec, pq   *pki.Issued // one revoked device certificate of each CA
	ecCA, mq *pki.CA
}

func newSeveralCAs(t testing.TB) *severalCAs {
	t.Helper()
	dir := t.TempDir()
	km, err := softkms.Open(context.Background(), filepath.Join(dir, "keys"), []byte("test passphrase"), softkms.InsecureKDFIterations(1000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { km.Close() })
	set, err := pki.OpenSet(context.Background(), km, pki.SetConfig{Config: pki.Config{Suite: sigalg.ECDSAP256, Now: func() time.Time { return testNow }},
		Dir: filepath.Join(dir, "ca"), MoreDir: filepath.Join(dir, "cas"), Suites: []sigalg.ID{sigalg.MLDSA65}})
	if err != nil {
		t.Fatal(err)
	}
	s := &severalCAs{set: set, revoked: &memSource{}, certs: &certSource{certs: map[[16]byte]store.Certificate{}}, ecCA: set.First()}
	s.mq, _ = set.Get("ml-dsa-65")
	s.ec, s.pq = issueTestDevice(t, s.ecCA, "ecdsa device"), issueTestDevice(t, s.mq, "ml-dsa device")
	at := testNow.Add(-time.Hour)
	for _, iss := range []*pki.Issued{s.ec, s.pq} {
		c := record(iss)
		c.RevokedAt, c.RevocationReason = at, pki.ReasonKeyCompromise
		s.certs.put(c)
		s.revoked.mu.Lock()
		s.revoked.list = append(s.revoked.list, store.RevokedCertificate{Serial: iss.Serial, RevokedAt: at, Reason: pki.ReasonKeyCompromise, NotAfter: iss.NotAfter})
		s.revoked.mu.Unlock()
	}
	// A revoked serial the registry no longer knows is no one's.
	s.revoked.add(7, at, pki.ReasonKeyCompromise)
	return s
}

// With Certificates set, each CA's CRL lists its own revoked certificates
// only; without it (one CA), every revoked serial.
func TestPublisherKeepsToItsCA(t *testing.T) {
	t.Parallel()
	s := newSeveralCAs(t)
	for i, c := range []struct {
		ca          *pki.CA
		mine, other *pki.Issued
	}{{s.ecCA, s.ec, s.pq}, {s.mq, s.pq, s.ec}} {
		pub, err := New(Config{CA: c.ca, Source: s.revoked, Certificates: s.certs, Now: func() time.Time { return testNow }})
		if err != nil {
			t.Fatal(err)
		}
		crl, err := pub.Refresh(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := pki.VerifyCRL(crl.DER, c.ca.IssuingCertificate())
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := parsed.Lookup(c.mine.Serial); !ok || len(parsed.Entries) != 1 {
			t.Fatalf("CRL of %s: %d entries, its own listed %v", c.ca.Name(), len(parsed.Entries), ok)
		}
		if _, ok := parsed.Lookup(c.other.Serial); ok {
			t.Fatalf("CRL of %s lists the other CA's certificate", c.ca.Name())
		}
		// A registry failure is an error, not a CRL that leaves entries
		// out: the last CRL stays served. Remembered serials are not
		// read again, so a new one is needed to reach the registry.
		s.certs.failWith(errors.New("registry down"))
		s.revoked.add(byte(9+i), testNow.Add(-time.Minute), pki.ReasonKeyCompromise)
		if _, err := pub.Refresh(context.Background()); err == nil {
			t.Fatalf("CRL of %s made while the registry fails", c.ca.Name())
		}
		s.certs.failWith(nil)
	}
	all, err := New(Config{CA: s.ecCA, Source: s.revoked, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	crl, err := all.Refresh(context.Background())
	if err != nil || crl.Entries != 5 {
		t.Fatalf("one-CA CRL: %d entries, %v; want every revoked serial", crl.Entries, err)
	}
}

// Each CA's OCSP responder answers at its own path with its own key, GET
// and POST; the first CA's keeps pki.OCSPPath; the mux refuses a path
// outside pki.OCSPPath/<name>.
func TestOCSPPerCA(t *testing.T) {
	t.Parallel()
	s := newSeveralCAs(t)
	dir := t.TempDir()
	km, err := softkms.Open(context.Background(), filepath.Join(dir, "keys"), []byte("test passphrase"), softkms.InsecureKDFIterations(1000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { km.Close() })
	now := func() time.Time { return testNow }
	routes := Routes{MoreOCSP: map[string]http.Handler{}}
	for _, ca := range s.set.All() {
		r, err := NewOCSPResponder(context.Background(), OCSPConfig{CA: ca, Keys: km, Certificates: s.certs, Now: now,
			KeyName: ca.KeyName(pki.KeyOCSPResponder), Path: ca.OCSPPath()})
		if err != nil {
			t.Fatal(err)
		}
		if ca == s.ecCA {
			routes.OCSP = r
		} else {
			routes.MoreOCSP[ca.OCSPPath()] = r
		}
	}
	if _, err := km.PublicKey(context.Background(), "ml-dsa-65."+pki.KeyOCSPResponder); err != nil {
		t.Fatalf("the ML-DSA CA's responder key: %v", err)
	}
	mux, err := NewMux(routes)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	for _, c := range []struct {
		ca  *pki.CA
		iss *pki.Issued
	}{{s.ecCA, s.ec}, {s.mq, s.pq}} {
		req, err := pki.CreateOCSPRequest(c.ca.IssuingCertificate(), [][pki.SerialSize]byte{c.iss.Serial}, crypto.SHA256, nil)
		if err != nil {
			t.Fatal(err)
		}
		post, err := http.Post(srv.URL+c.ca.OCSPPath(), ContentTypeOCSPRequest, bytes.NewReader(req))
		if err != nil {
			t.Fatal(err)
		}
		get, err := http.Get(srv.URL + c.ca.OCSPPath() + "/" + base64.StdEncoding.EncodeToString(req))
		if err != nil {
			t.Fatal(err)
		}
		for _, resp := range []*http.Response{post, get} {
			var body bytes.Buffer
			body.ReadFrom(resp.Body)
			resp.Body.Close()
			got, err := pki.VerifyOCSPResponse(body.Bytes(), c.ca.IssuingCertificate().Raw, testNow, nil)
			if err != nil || len(got.Responses) != 1 || got.Responses[0].Status != pki.OCSPRevoked {
				t.Fatalf("%s %s: %v %+v", resp.Request.Method, c.ca.OCSPPath(), err, got)
			}
		}
	}
	// The first CA's responder does not answer for the other CA.
	req, _ := pki.CreateOCSPRequest(s.mq.IssuingCertificate(), [][pki.SerialSize]byte{s.pq.Serial}, crypto.SHA256, nil)
	resp, err := http.Post(srv.URL+pki.OCSPPath, ContentTypeOCSPRequest, bytes.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	if _, err := pki.VerifyOCSPResponse(body.Bytes(), s.mq.IssuingCertificate().Raw, testNow, nil); !errors.Is(err, pki.ErrOCSPRefused) {
		t.Fatalf("first CA's responder about the other CA: %v, want refused", err)
	}
	for _, bad := range []string{"/crl/x", pki.OCSPPath + "/a/b"} {
		if _, err := NewMux(Routes{MoreOCSP: map[string]http.Handler{bad: routes.OCSP}}); err == nil {
			t.Fatalf("NewMux accepted an OCSP responder at %q", bad)
		}
	}
}
