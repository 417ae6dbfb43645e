package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/cmp"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// TestFrontDoorCACertsByLabel: on a platform with an ECDSA P-256 and an
// ML-DSA-65 CA, EST's cacerts and CMP's genm caCerts under a product's
// label hand out exactly the CA that issues that product's devices, then
// its root; without a label, every CA; under a label no product has, a
// clear refusal.
func TestFrontDoorCACertsByLabel(t *testing.T) {
	t.Parallel()
	p, err := Start(context.Background(), Config{DataDir: newDataDir(t), Listen: "127.0.0.1:0", ServerName: "localhost",
		CASuite: sigalg.ECDSAP256, CASuites: []sigalg.ID{sigalg.MLDSA65}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if _, err := adminClient(t, p).CreateProduct(context.Background(), httpapi.ProductRequest{ID: "pq-meter", Name: "PQ meter",
		CertValidity: "720h", CloudEndpoint: "mqtts://broker.test:8883", IssuingCA: string(sigalg.MLDSA65)}); err != nil {
		t.Fatal(err)
	}
	pq, err := p.CAs.Get(string(sigalg.MLDSA65))
	if err != nil {
		t.Fatal(err)
	}
	want := pq.Chain()
	all := 0
	for _, ca := range p.CAs.All() {
		all += len(ca.Chain())
	}

	c := dialEST(t, p, nil)
	for _, tc := range []struct {
		path   string
		status int
		certs  int
	}{
		{"/.well-known/est/cacerts", 200, all},
		{"/.well-known/est/pq-meter/cacerts", 200, len(want)},
		{"/.well-known/est/no-such-product/cacerts", 404, 0},
	} {
		status, _, body := c.do(t, "GET", tc.path, "", nil)
		if status != tc.status {
			t.Fatalf("%s: %d %s, want %d", tc.path, status, body, tc.status)
		}
		if status != 200 {
			if !bytes.Contains(body, []byte("no product has the label")) {
				t.Errorf("%s: %q does not say what is wrong", tc.path, body)
			}
			continue
		}
		got := estCertsOf(t, body)
		if len(got) != tc.certs {
			t.Errorf("%s: %d certificates, want %d", tc.path, len(got), tc.certs)
		}
		if tc.certs == len(want) && !bytes.Equal(got[0], want[0]) {
			t.Errorf("%s: the first certificate is not the product's issuing CA", tc.path)
		}
	}

	genm := func(path string) (int, [][]byte) {
		t.Helper()
		body, err := cmp.NewBody(cmp.TypeGenM, []cmp.InfoTypeAndValue{{Type: cmp.OIDCACerts, Value: asn1.NullRawValue}})
		if err != nil {
			t.Fatal(err)
		}
		tid, nonce := make([]byte, 16), make([]byte, 16)
		rand.Read(tid)
		rand.Read(nonce)
		dn := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true, Bytes: []byte{0x30, 0}}
		m := &cmp.Message{Header: cmp.Header{PVNO: 2, Sender: dn, Recipient: dn, MessageTime: time.Now().UTC().Truncate(time.Second),
			TransactionID: tid, SenderNonce: nonce}, Body: body}
		der, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		resp, err := tlsClient(p, nil).Post(p.URL()+path, cmp.ContentType, bytes.NewReader(der))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", path, resp.Status)
		}
		answer, err := cmp.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		content, _ := answer.Content()
		if answer.Type() == cmp.TypeError {
			return answer.Type(), nil
		}
		var itavs []cmp.InfoTypeAndValue
		if _, err := asn1.Unmarshal(content, &itavs); err != nil || len(itavs) != 1 {
			t.Fatalf("%s: genp content %v", path, err)
		}
		var certs []asn1.RawValue
		if _, err := asn1.Unmarshal(itavs[0].Value.FullBytes, &certs); err != nil {
			t.Fatalf("%s: caCerts: %v", path, err)
		}
		var out [][]byte
		for _, c := range certs {
			if _, err := x509.ParseCertificate(c.FullBytes); err != nil {
				t.Fatalf("%s: not a certificate: %v", path, err)
			}
			out = append(out, c.FullBytes)
		}
		return answer.Type(), out
	}
	if typ, certs := genm(cmp.Path); typ != cmp.TypeGenP || len(certs) != all {
		t.Errorf("genm without a label: %s with %d certificates, want genp with %d", cmp.BodyName(typ), len(certs), all)
	}
	if typ, certs := genm("/.well-known/cmp/p/pq-meter"); typ != cmp.TypeGenP || len(certs) != len(want) || !bytes.Equal(certs[0], want[0]) {
		t.Errorf("genm under the product's label: %s with %d certificates, want genp with its CA's %d", cmp.BodyName(typ), len(certs), len(want))
	}
	if typ, _ := genm("/.well-known/cmp/p/no-such-product"); typ != cmp.TypeError {
		t.Errorf("genm under an unknown label: %s, want error", cmp.BodyName(typ))
	}
}
