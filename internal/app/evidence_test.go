package app

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/audit/chain"
	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/evidence"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// TestEvidencePack: a device onboarded, suspended and resumed; its pack
// exported over HTTPS verifies offline with the published audit key, the
// trust bundle and the original manifest, and every kind of tampering is
// named. Bad requests are problems and export nothing.
func TestEvidencePack(t *testing.T) {
	ctx := t.Context()
	p := start(t, t.TempDir(), sigalg.ECDSAP256)
	f := newFleet(t, sigalg.Ed25519)
	admin := adminClient(t, p)
	f.register(t, admin)
	if _, _, err := onboard(t, p, f.devices[0], f.ids[0]); err != nil {
		t.Fatal(err)
	}
	for _, tr := range []string{"suspend", "resume"} {
		if _, err := admin.TransitionDevice(ctx, f.ids[0], tr, "evidence test"); err != nil {
			t.Fatal(err)
		}
	}
	checkpointNow(t, p)
	pub := publishedAuditKey(t, p)

	var pack bytes.Buffer
	if _, err := admin.ExportEvidence(ctx, httpapi.EvidenceQuery{Device: f.ids[0].String()}, &pack); err != nil {
		t.Fatal(err)
	}
	opts := evidence.Options{Trust: p.CA.RootPEM(), Manifests: map[string][]byte{"batch-1": f.manifest}}
	rep, err := verifyPack(pack.Bytes(), pub, opts)
	if err != nil {
		t.Fatal(err)
	}
	// Audit entries: the manifest import, the onboarding and the two
	// transitions at least.
	if rep.Devices != 1 || rep.Certificates != 1 || rep.AuditEntries < 4 || rep.Manifests != 1 {
		t.Fatalf("report %+v", rep)
	}

	t.Run("tampering", func(t *testing.T) { evidenceTampering(t, pack.Bytes(), pub) })
	t.Run("foreign trust bundle", func(t *testing.T) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "another root"}, IsCA: true,
			BasicConstraintsValid: true, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		foreign := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		_, err = verifyPack(pack.Bytes(), pub, evidence.Options{Trust: foreign})
		if err == nil || !strings.Contains(err.Error(), "-root.pem: CA root is not in the trust bundle given") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("refusals", func(t *testing.T) {
		for _, c := range []struct {
			q      httpapi.EvidenceQuery
			code   string
			status int
		}{
			{httpapi.EvidenceQuery{Device: strings.Repeat("ab", 32)}, "not-found", 404},
			{httpapi.EvidenceQuery{Batch: "no-such-batch"}, "not-found", 404},
			{httpapi.EvidenceQuery{Device: "XYZ"}, "malformed-request", 400},
			{httpapi.EvidenceQuery{Device: f.ids[0].String(), Product: "meter"}, "malformed-request", 400},
			{httpapi.EvidenceQuery{}, "malformed-request", 400},
		} {
			var out bytes.Buffer
			_, err := admin.ExportEvidence(ctx, c.q, &out)
			var prob *httpapi.Problem
			if !errors.As(err, &prob) || prob.Code != c.code || prob.Status != c.status || out.Len() != 0 {
				t.Errorf("%+v: got %v and %d bytes, want %s", c.q, err, out.Len(), c.code)
			}
		}
		tok, err := admin.CreateToken(ctx, httpapi.TokenRequest{Name: "reader", Scopes: []string{"devices:read"}})
		if err != nil {
			t.Fatal(err)
		}
		reader := *admin
		reader.Token = tok.Secret
		_, err = reader.ExportEvidence(ctx, httpapi.EvidenceQuery{Device: f.ids[0].String()}, io.Discard)
		var prob *httpapi.Problem
		if !errors.As(err, &prob) || prob.Code != "forbidden" {
			t.Fatalf("a token without audit:read: %v", err)
		}
	})
}

// checkpointNow signs a checkpoint of everything logged so far with the
// platform's audit key, as its sealer does every 10 s.
func checkpointNow(t *testing.T, p *Platform) {
	t.Helper()
	key, err := ensureAuditKey(t.Context(), p.keys, p.cfg.CASuite)
	if err != nil {
		t.Fatal(err)
	}
	s, err := chain.NewSealer(chain.SealerConfig{Chain: p.Store.(store.AuditChain), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Step(t.Context(), true); err != nil {
		t.Fatal(err)
	}
}

func publishedAuditKey(t *testing.T, p *Platform) crypto.PublicKey {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(p.CA.RootPEM())
	resp, err := cmdline.PlatformHTTPClient(roots, nil).Get(p.URL() + AuditKeyPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d, %v", AuditKeyPath, resp.StatusCode, err)
	}
	pub, err := sigalg.ParsePublicKeyPEM(data)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func verifyPack(b []byte, pub crypto.PublicKey, opts evidence.Options) (*evidence.Report, error) {
	return evidence.Verify(context.Background(), bytes.NewReader(b), int64(len(b)), pub, opts)
}

// evidenceTampering changes a real pack as a forger without the audit
// key could, and checks the message names the member and the failure.
func evidenceTampering(t *testing.T, pack []byte, pub crypto.PublicKey) {
	names, data := untar(t, pack)
	find := func(prefix, suffix string) string {
		for _, n := range names {
			if strings.HasPrefix(n, prefix) && strings.HasSuffix(n, suffix) {
				return n
			}
		}
		t.Fatalf("no member %s…%s", prefix, suffix)
		return ""
	}
	cert, entry := find("devices/", ".pem"), find("audit/", ".json")
	cases := []struct {
		name   string
		change func() []string
		want   string
	}{
		{"flip a byte in a certificate", func() []string { data[cert][40] ^= 1; return names }, "member " + cert + ": SHA-256"},
		{"remove a member", func() []string { return without(names, cert) }, "member " + cert + ": listed in MANIFEST.json but missing"},
		{"add a member", func() []string {
			data["devices/note.txt"] = []byte("trust me")
			return append([]string{"devices/note.txt"}, names...)
		}, "member devices/note.txt: not listed in MANIFEST.json"},
		{"swap the signature", func() []string {
			_, other := untar(t, pack)
			data[evidence.MemberSignature] = bytes.Clone(other[evidence.MemberSignature])
			data[evidence.MemberSignature][len(data[evidence.MemberSignature])-1] ^= 1
			return names
		}, "member MANIFEST.sig: signature over MANIFEST.json does not verify"},
		{"alter an audit entry", func() []string {
			data[entry] = bytes.Replace(data[entry], []byte(`"outcome": "ok"`), []byte(`"outcome": "denied"`), 1)
			return names
		}, "member " + entry + ": SHA-256"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, fresh := untar(t, pack)
			data = fresh
			_, err := verifyPack(retar(t, c.change(), data), pub, evidence.Options{})
			if !errors.Is(err, evidence.ErrPack) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
}

func without(names []string, drop string) []string {
	var out []string
	for _, n := range names {
		if n != drop {
			out = append(out, n)
		}
	}
	return out
}

func untar(t *testing.T, pack []byte) ([]string, map[string][]byte) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(pack))
	var names []string
	data := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, data
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		names, data[h.Name] = append(names, h.Name), b
	}
}

func retar(t *testing.T, names []string, data map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Size: int64(len(data[n])), Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
		tw.Write(data[n])
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
