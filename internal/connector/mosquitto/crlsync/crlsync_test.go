package crlsync_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/connector/mosquitto/crlsync"
	"github.com/hallmark-iot/hallmark/internal/keys/softkms"
	"github.com/hallmark-iot/hallmark/internal/pki"
)

func newCA(t *testing.T) *pki.CA {
	t.Helper()
	km, err := softkms.Open(t.Context(), filepath.Join(t.TempDir(), "keys"), []byte("test passphrase"), softkms.InsecureKDFIterations(1000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { km.Close() })
	ca, err := pki.Open(t.Context(), km, t.TempDir(), pki.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func signCRL(t *testing.T, ca *pki.CA, number int64, thisUpdate time.Time, validity time.Duration) []byte {
	t.Helper()
	der, err := ca.CreateCRL(context.Background(), pki.CRLRequest{Number: big.NewInt(number), ThisUpdate: thisUpdate,
		NextUpdate: thisUpdate.Add(validity), Entries: []pki.CRLEntry{{Serial: [pki.SerialSize]byte{1}, RevokedAt: thisUpdate, Reason: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// server serves whatever CRL it was last given, with an ETag of its
// number, and counts the conditional requests it answered 304.
type server struct {
	mu          sync.Mutex
	der         []byte
	etag        string
	notModified atomic.Int32
	srv         *httptest.Server
}

func newServer(t *testing.T) *server {
	s := &server{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		der, etag := s.der, s.etag
		s.mu.Unlock()
		if r.Header.Get("If-None-Match") == etag {
			s.notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
		w.Write(der)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *server) serve(der []byte, etag int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.der, s.etag = der, `"`+strconv.Itoa(etag)+`"`
}

type countingReloader struct {
	n    int
	fail bool
}

func (r *countingReloader) Reload() error {
	if r.fail {
		return errors.New("no such process")
	}
	r.n++
	return nil
}

func newSyncer(t *testing.T, ca *pki.CA, s *server, file string, r crlsync.Reloader, now time.Time) *crlsync.Syncer {
	t.Helper()
	sy, err := crlsync.New(crlsync.Config{URL: s.srv.URL + "/crl/x.crl", Issuers: []*x509.Certificate{ca.RootCertificate(), ca.IssuingCertificate()},
		File: file, Reloader: r, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return sy
}

func fileCRL(t *testing.T, file string) *pki.CRL {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "X509 CRL" {
		t.Fatalf("file is not a PEM CRL")
	}
	crl, err := pki.ParseCRL(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return crl
}

func TestSync(t *testing.T) {
	ca, other := newCA(t), newCA(t)
	now := time.Now().Truncate(time.Second)
	s := newServer(t)
	file := filepath.Join(t.TempDir(), "crl.pem")
	r := &countingReloader{}
	sy := newSyncer(t, ca, s, file, r, now)

	s.serve(signCRL(t, ca, 5, now, time.Hour), 5)
	if res, err := sy.Sync(t.Context()); err != nil || !res.Changed || res.Number.Int64() != 5 || r.n != 1 {
		t.Fatalf("first sync: %+v, %v, %d reloads", res, err, r.n)
	}
	if fileCRL(t, file).Number.Int64() != 5 {
		t.Fatal("file does not hold CRL 5")
	}
	if res, err := sy.Sync(t.Context()); err != nil || res.Changed || s.notModified.Load() != 1 || r.n != 1 {
		t.Fatalf("unchanged: %+v, %v, %d answered 304, %d reloads", res, err, s.notModified.Load(), r.n)
	}

	refusals := map[string]struct {
		der  []byte
		want error
	}{
		"older CRL":           {signCRL(t, ca, 4, now, time.Hour), crlsync.ErrStale},
		"another CA's CRL":    {signCRL(t, other, 9, now, time.Hour), pki.ErrUntrusted},
		"expired CRL":         {signCRL(t, ca, 9, now.Add(-2*time.Hour), time.Hour), pki.ErrExpired},
		"CRL from the future": {signCRL(t, ca, 9, now.Add(time.Hour), time.Hour), pki.ErrExpired},
		"not a CRL":           {[]byte("<html>maintenance</html>"), pki.ErrMalformedCRL},
	}
	for name, c := range refusals {
		t.Run(name, func(t *testing.T) {
			s.serve(c.der, 100)
			if _, err := sy.Sync(t.Context()); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if fileCRL(t, file).Number.Int64() != 5 || r.n != 1 {
				t.Fatal("a refused CRL changed the file or reloaded the broker")
			}
		})
	}

	// A CRL issued by a CA not configured at all.
	onlyRoot, err := crlsync.New(crlsync.Config{URL: s.srv.URL + "/x.crl", Issuers: []*x509.Certificate{ca.RootCertificate()},
		File: filepath.Join(t.TempDir(), "crl.pem"), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	s.serve(signCRL(t, ca, 7, now, time.Hour), 7)
	if _, err := onlyRoot.Sync(t.Context()); !errors.Is(err, crlsync.ErrNoIssuer) {
		t.Fatalf("CRL of an unconfigured CA: %v", err)
	}

	// A new syncer (a restart) takes the file's CRL as its floor.
	sy2 := newSyncer(t, ca, s, file, r, now)
	s.serve(signCRL(t, ca, 3, now, time.Hour), 3)
	if _, err := sy2.Sync(t.Context()); !errors.Is(err, crlsync.ErrStale) {
		t.Fatalf("after restart, an older CRL: %v", err)
	}

	// A failed reload is tried again at the next round, even unchanged.
	r.fail = true
	s.serve(signCRL(t, ca, 6, now, time.Hour), 6)
	if _, err := sy.Sync(t.Context()); err == nil {
		t.Fatal("sync with a failing reload succeeded")
	}
	r.fail = false
	if _, err := sy.Sync(t.Context()); err != nil || r.n != 2 || fileCRL(t, file).Number.Int64() != 6 {
		t.Fatalf("retry: %v, %d reloads", err, r.n)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	ca := newCA(t)
	issuers := []*x509.Certificate{ca.IssuingCertificate()}
	for name, cfg := range map[string]crlsync.Config{
		"no URL":     {Issuers: issuers, File: "crl.pem"},
		"ftp URL":    {URL: "ftp://h/x.crl", Issuers: issuers, File: "crl.pem"},
		"no issuers": {URL: "http://h/x.crl", File: "crl.pem"},
		"no file":    {URL: "http://h/x.crl", Issuers: issuers},
		"negative":   {URL: "http://h/x.crl", Issuers: issuers, File: "crl.pem", Interval: -time.Second},
	} {
		if _, err := crlsync.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParsePID(t *testing.T) {
	for in, want := range map[string]int{"1234\n": 1234, " 42 ": 42} {
		if got, err := crlsync.ParsePID([]byte(in)); err != nil || got != want {
			t.Errorf("ParsePID(%q) = %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "1", "0", "-5", "+5", "012", "12a", "99999999999999999999999", "1 2"} {
		if _, err := crlsync.ParsePID([]byte(in)); err == nil {
			t.Errorf("ParsePID(%q) accepted", in)
		}
	}
	if err := crlsync.PIDFile(filepath.Join(t.TempDir(), "none.pid")).Reload(); err == nil {
		t.Error("reload through a missing pid file succeeded")
	}
}

func FuzzParsePID(f *testing.F) {
	for _, s := range []string{"1234\n", "", "0", "+1", " 77 ", "\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pid, err := crlsync.ParsePID(data)
		if err == nil && (pid <= 1 || strconv.Itoa(pid) != string(trim(data))) {
			t.Fatalf("ParsePID(%q) = %d", data, pid)
		}
	})
}

func trim(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\n' || b[0] == '\t' || b[0] == '\r' || b[0] == '\v' || b[0] == '\f') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\n' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r' || b[len(b)-1] == '\v' || b[len(b)-1] == '\f') {
		b = b[:len(b)-1]
	}
	return b
}
