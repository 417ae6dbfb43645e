package cmp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// recorder is a platform that issues issued for every enrolment and
// remembers the keys it was asked for.
type recorder struct {
	issued                 []byte
	enrolment, operational []byte
}

func (r *recorder) Enrol(_ context.Context, _ Origin, enrolment, operational []byte) (Issued, error) {
	r.enrolment, r.operational = enrolment, operational
	return Issued{Certificate: r.issued}, nil
}
func (r *recorder) Renew(context.Context, Origin, *x509.Certificate, []byte) (Issued, error) {
	return Issued{}, errRefused
}
func (r *recorder) Revoke(context.Context, Origin, *x509.Certificate, int) error { return errRefused }

// certFor is a certificate carrying key's public key, as a device's
// toolchain would make a self-signed one; the door reads only its key and
// its key identifier, so its signature is left empty.
func certFor(t *testing.T, key crypto.Signer, kid []byte) []byte {
	t.Helper()
	spki, err := sigalg.MarshalPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	suite, _ := sigalg.SuiteOf(key)
	name, _ := asn1.Marshal(pkix.Name{CommonName: "enrolment"}.ToRDNSequence())
	skiExt, _ := asn1.Marshal(kid)
	alg := pkix.AlgorithmIdentifier{Algorithm: suite.OID()}
	tbs := struct {
		Version    int `asn1:"explicit,tag:0"`
		Serial     *big.Int
		Alg        pkix.AlgorithmIdentifier
		Issuer     asn1.RawValue
		Validity   struct{ NotBefore, NotAfter time.Time }
		Subject    asn1.RawValue
		SPKI       asn1.RawValue
		Extensions []pkix.Extension `asn1:"explicit,tag:3"`
	}{Version: 2, Serial: big.NewInt(1), Alg: alg, Issuer: asn1.RawValue{FullBytes: name}, Subject: asn1.RawValue{FullBytes: name},
		SPKI: asn1.RawValue{FullBytes: spki}, Extensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 14}, Value: skiExt}}}
	tbs.Validity.NotBefore, tbs.Validity.NotAfter = time.Now().Add(-time.Hour).UTC().Truncate(time.Second), time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	der, err := asn1.Marshal(struct {
		TBS any
		Alg pkix.AlgorithmIdentifier
		Sig asn1.BitString
	}{tbs, alg, asn1.BitString{Bytes: []byte{0}, BitLength: 8}})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// protect signs m with key and puts cert in its extraCerts.
func protect(t *testing.T, m *Message, key crypto.Signer, cert []byte) []byte {
	t.Helper()
	suite, _ := sigalg.SuiteOf(key)
	m.Header.ProtectionAlg = pkix.AlgorithmIdentifier{Algorithm: suite.OID()}
	part, err := m.ProtectedPart()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := suite.Sign(key, part)
	if err != nil {
		t.Fatal(err)
	}
	m.Protection = asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}
	m.ExtraCerts = []asn1.RawValue{{FullBytes: cert}}
	return must(m.Marshal())
}

// TestMLDSAEnrolment runs ir, ip, certConf and pkiConf with ML-DSA keys,
// which OpenSSL 3.0 cannot make: an ML-DSA-65 enrolment key protects the
// request for an ML-DSA-44 operational key.
func TestMLDSAEnrolment(t *testing.T) {
	enr65, _ := sigalg.MLDSA65.Suite()
	op44, _ := sigalg.MLDSA44.Suite()
	enrolment, _ := enr65.GenerateKey(rand.Reader)
	operational, _ := op44.GenerateKey(rand.Reader)
	now := time.Now().UTC().Truncate(time.Second)
	calls := 0
	signer := testServer(t, now, &calls)
	rec := &recorder{issued: signer.cfg.SignerChain[0]}
	signer.cfg.Devices = rec
	kid := []byte("enrolment kid")
	cert := certFor(t, enrolment, kid)

	opSPKI, _ := sigalg.MarshalPublicKey(operational.Public())
	tpl := must(asn1.Marshal(asn1.RawValue{Tag: asn1.TagSequence, IsCompound: true,
		Bytes: must(asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 6, IsCompound: true, Bytes: opSPKI[4:]}))}))
	if opSPKI[1] != 0x82 {
		t.Fatalf("the SPKI's length is not two bytes long: % x", opSPKI[:4])
	}
	certReq := must(asn1.Marshal(struct {
		ID  int
		Tpl asn1.RawValue
	}{0, asn1.RawValue{FullBytes: tpl}}))
	popSig, _ := op44.Sign(operational, certReq)
	pop := must(asn1.Marshal(struct {
		Alg pkix.AlgorithmIdentifier
		Sig asn1.BitString
	}{pkix.AlgorithmIdentifier{Algorithm: op44.OID()}, asn1.BitString{Bytes: popSig, BitLength: 8 * len(popSig)}}))
	var popSeq asn1.RawValue
	asn1.Unmarshal(pop, &popSeq)
	reqs := []struct {
		Req asn1.RawValue
		POP asn1.RawValue
	}{{asn1.RawValue{FullBytes: certReq}, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, IsCompound: true, Bytes: popSeq.Bytes}}}
	body, err := NewBody(TypeIR, reqs)
	if err != nil {
		t.Fatal(err)
	}
	tid, nonce := make([]byte, 16), make([]byte, 16)
	rand.Read(tid)
	rand.Read(nonce)
	dn := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true, Bytes: []byte{0x30, 0}}
	ir := &Message{Header: Header{PVNO: 2, Sender: dn, Recipient: dn, MessageTime: now, SenderKID: kid,
		TransactionID: tid, SenderNonce: nonce}, Body: body}
	resp, err := Parse(must(signer.Handle(context.Background(), protect(t, ir, enrolment, cert), Origin{Addr: "a"})))
	if err != nil || resp.Type() != TypeIP {
		t.Fatalf("ir answered with %v (failInfo bit %d), %v", BodyName(resp.Type()), failBit(t, must(resp.Marshal())), err)
	}
	enrSPKI, _ := sigalg.MarshalPublicKey(enrolment.Public())
	if !bytes.Equal(rec.enrolment, enrSPKI) || !bytes.Equal(rec.operational, opSPKI) {
		t.Fatal("the platform was not asked for the request's keys")
	}
	if !bytes.Equal(resp.Header.RecipNonce, nonce) || !bytes.Equal(resp.Header.TransactionID, tid) {
		t.Fatal("ip does not answer the ir's nonce and transaction")
	}

	// certConf by another key is refused; by the enrolment key, answered.
	hash := sha256.Sum256(rec.issued)
	confBody, _ := NewBody(TypeCertConf, []CertStatus{{CertHash: hash[:], CertReqID: 0}})
	conf := func() *Message {
		n := make([]byte, 16)
		rand.Read(n)
		return &Message{Header: Header{PVNO: 2, Sender: dn, Recipient: dn, MessageTime: now, SenderKID: kid,
			TransactionID: tid, SenderNonce: n, RecipNonce: resp.Header.SenderNonce}, Body: confBody}
	}
	other, _ := enr65.GenerateKey(rand.Reader)
	if bit := failBit(t, must(signer.Handle(context.Background(), protect(t, conf(), other, certFor(t, other, kid)), Origin{Addr: "a"}))); bit != FailBadMessageCheck {
		t.Fatalf("certConf by another key: bit %d, want badMessageCheck", bit)
	}
	if bit := failBit(t, must(signer.Handle(context.Background(), protect(t, conf(), enrolment, cert), Origin{Addr: "a"}))); bit != -1 {
		t.Fatalf("certConf: bit %d, want pkiConf", bit)
	}
	// A second certConf finds nothing to confirm.
	if bit := failBit(t, must(signer.Handle(context.Background(), protect(t, conf(), enrolment, cert), Origin{Addr: "a"}))); bit != FailBadRequest {
		t.Fatalf("second certConf: bit %d, want badRequest", bit)
	}
}
