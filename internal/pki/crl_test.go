package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// crlSuites are every suite a CA can sign a CRL with.
var crlSuites = []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519, sigalg.MLDSA44, sigalg.MLDSA65, sigalg.MLDSA87}

func testSerial(b byte) [SerialSize]byte {
	var s [SerialSize]byte
	s[0], s[SerialSize-1] = 0x40, b
	return s
}

func testCRLRequest(entries ...CRLEntry) CRLRequest {
	return CRLRequest{Number: big.NewInt(7), ThisUpdate: testNow, NextUpdate: testNow.Add(24 * time.Hour), Entries: entries}
}

func createCRL(t testing.TB, ca *CA, req CRLRequest) []byte {
	t.Helper()
	der, err := ca.CreateCRL(context.Background(), req)
	if err != nil {
		t.Fatalf("CreateCRL: %v", err)
	}
	return der
}

func TestCreateCRLEverySuite(t *testing.T) {
	entries := []CRLEntry{
		{Serial: testSerial(1), RevokedAt: testNow.Add(-time.Hour), Reason: ReasonKeyCompromise},
		{Serial: testSerial(2), RevokedAt: testNow.Add(-2 * time.Hour), Reason: ReasonUnspecified},
		{Serial: testSerial(3), RevokedAt: testNow.Add(-3 * time.Hour), Reason: ReasonSuperseded},
		{Serial: testSerial(4), RevokedAt: testNow, Reason: ReasonCessationOfOperation},
		{Serial: testSerial(5), RevokedAt: testNow.Add(-time.Minute), Reason: ReasonCertificateHold},
	}
	for _, suite := range crlSuites {
		t.Run(string(suite), func(t *testing.T) {
			tc := newTestCA(t, suite)
			der := createCRL(t, tc.CA, testCRLRequest(entries...))
			crl, err := VerifyCRL(der, tc.IssuingCertificate())
			if err != nil {
				t.Fatalf("VerifyCRL: %v", err)
			}
			if !bytes.Equal(crl.RawIssuer, tc.IssuingCertificate().RawSubject) || crl.Number.Cmp(big.NewInt(7)) != 0 ||
				!crl.ThisUpdate.Equal(testNow) || !crl.NextUpdate.Equal(testNow.Add(24*time.Hour)) ||
				!bytes.Equal(crl.AuthorityKeyID, tc.IssuingCertificate().SubjectKeyId) {
				t.Errorf("CRL header: issuer %v, number %v, %v–%v, AKI %x", crl.Issuer, crl.Number, crl.ThisUpdate, crl.NextUpdate, crl.AuthorityKeyID)
			}
			if len(crl.Entries) != len(entries) {
				t.Fatalf("%d entries, want %d", len(crl.Entries), len(entries))
			}
			for i, e := range crl.Entries {
				if e.Serial != entries[i].Serial || !e.RevokedAt.Equal(entries[i].RevokedAt) || e.Reason != entries[i].Reason {
					t.Errorf("entry %d = %+v, want %+v", i, e, entries[i])
				}
			}
			if e, ok := crl.Lookup(testSerial(3)); !ok || e.Reason != ReasonSuperseded {
				t.Errorf("Lookup(3) = %+v, %v", e, ok)
			}
			if _, ok := crl.Lookup(testSerial(9)); ok {
				t.Error("Lookup finds a serial that is not revoked")
			}
			// The CRL does not verify under the root, nor under another CA
			// with the same names.
			if _, err := VerifyCRL(der, tc.RootCertificate()); !errors.Is(err, ErrUntrusted) {
				t.Errorf("VerifyCRL under the root: %v, want ErrUntrusted", err)
			}
			other := newTestCA(t, suite)
			if _, err := VerifyCRL(der, other.IssuingCertificate()); !errors.Is(err, ErrUntrusted) {
				t.Errorf("VerifyCRL under another CA: %v, want ErrUntrusted", err)
			}
			tampered := bytes.Clone(der)
			tampered[len(tampered)-5] ^= 1
			if _, err := VerifyCRL(tampered, tc.IssuingCertificate()); !errors.Is(err, ErrUntrusted) {
				t.Errorf("VerifyCRL of a tampered signature: %v, want ErrUntrusted", err)
			}
		})
	}
}

// TestCRLAgainstCryptoX509: crypto/x509, an independent parser, reads the
// classical CRLs the same way and checks their signatures.
func TestCRLAgainstCryptoX509(t *testing.T) {
	for _, suite := range []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519} {
		t.Run(string(suite), func(t *testing.T) {
			tc := newTestCA(t, suite)
			der := createCRL(t, tc.CA, testCRLRequest(CRLEntry{Serial: testSerial(1), RevokedAt: testNow, Reason: ReasonKeyCompromise}))
			rl, err := x509.ParseRevocationList(der)
			if err != nil {
				t.Fatal(err)
			}
			if err := rl.CheckSignatureFrom(tc.IssuingCertificate()); err != nil {
				t.Fatalf("crypto/x509: %v", err)
			}
			if len(rl.RevokedCertificateEntries) != 1 || rl.RevokedCertificateEntries[0].ReasonCode != ReasonKeyCompromise ||
				rl.Number.Int64() != 7 {
				t.Errorf("crypto/x509 reads %+v", rl.RevokedCertificateEntries)
			}
		})
	}
}

// TestCRLWithoutEntries: with nothing revoked, revokedCertificates is
// absent (RFC 5280 §5.1.2.6), not an empty SEQUENCE.
func TestCRLWithoutEntries(t *testing.T) {
	tc := newTestCA(t, sigalg.Ed25519)
	crl, err := VerifyCRL(createCRL(t, tc.CA, testCRLRequest()), tc.IssuingCertificate())
	if err != nil {
		t.Fatal(err)
	}
	var tbs struct {
		Version              int
		Signature            algorithmIdentifier
		Issuer               asn1.RawValue
		ThisUpdate, NextUpdt time.Time
		Next                 asn1.RawValue
	}
	if _, err := asn1.Unmarshal(crl.RawTBS, &tbs); err != nil {
		t.Fatal(err)
	}
	if tbs.Version != 1 || tbs.Next.Class != asn1.ClassContextSpecific || tbs.Next.Tag != 0 {
		t.Errorf("version %d; element after nextUpdate: class %d tag %d, want the [0] extensions", tbs.Version, tbs.Next.Class, tbs.Next.Tag)
	}
}

// TestCRLSerialsRoundTrip: every non-zero 16-byte serial survives the
// minimal INTEGER encoding, leading zeros and the top bit included.
func TestCRLSerialsRoundTrip(t *testing.T) {
	tc := newTestCA(t, sigalg.Ed25519)
	serials := [][SerialSize]byte{{15: 1}, {0xff, 0xff, 15: 0xff}, {0x80}, {0x00, 0x7f, 15: 2}}
	var entries []CRLEntry
	for _, s := range serials {
		entries = append(entries, CRLEntry{Serial: s, RevokedAt: testNow, Reason: ReasonKeyCompromise})
	}
	crl, err := VerifyCRL(createCRL(t, tc.CA, testCRLRequest(entries...)), tc.IssuingCertificate())
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range crl.Entries {
		if e.Serial != serials[i] {
			t.Errorf("serial %x came back as %x", serials[i], e.Serial)
		}
	}
}

func TestCreateCRLRefuses(t *testing.T) {
	tc := newTestCA(t, sigalg.Ed25519)
	ok := CRLEntry{Serial: testSerial(1), RevokedAt: testNow, Reason: ReasonKeyCompromise}
	with := func(mutate func(*CRLRequest)) CRLRequest {
		req := testCRLRequest(ok)
		mutate(&req)
		return req
	}
	entry := func(mutate func(*CRLEntry)) CRLRequest {
		e := ok
		mutate(&e)
		return testCRLRequest(e)
	}
	cases := map[string]CRLRequest{
		"no number":             with(func(r *CRLRequest) { r.Number = nil }),
		"negative number":       with(func(r *CRLRequest) { r.Number = big.NewInt(-1) }),
		"number over 20 octets": with(func(r *CRLRequest) { r.Number = new(big.Int).Lsh(big.NewInt(1), 159) }),
		"no thisUpdate":         with(func(r *CRLRequest) { r.ThisUpdate = time.Time{} }),
		"nextUpdate not after":  with(func(r *CRLRequest) { r.NextUpdate = r.ThisUpdate }),
		"duplicate serial":      with(func(r *CRLRequest) { r.Entries = append(r.Entries, ok) }),
		"zero serial":           entry(func(e *CRLEntry) { e.Serial = [SerialSize]byte{} }),
		"future revocation":     entry(func(e *CRLEntry) { e.RevokedAt = testNow.Add(time.Second) }),
		"no revocation time":    entry(func(e *CRLEntry) { e.RevokedAt = time.Time{} }),
		"reason 7 (unused)":     entry(func(e *CRLEntry) { e.Reason = 7 }),
		"reason removeFromCRL":  entry(func(e *CRLEntry) { e.Reason = 8 }),
		"negative reason":       entry(func(e *CRLEntry) { e.Reason = -1 }),
	}
	for name, req := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := tc.CreateCRL(context.Background(), req); !errors.Is(err, ErrInvalidRequest) {
				t.Errorf("CreateCRL: %v, want ErrInvalidRequest", err)
			}
		})
	}
	// The largest number RFC 5280 allows is accepted.
	req := with(func(r *CRLRequest) { r.Number = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 159), big.NewInt(1)) })
	if _, err := tc.CreateCRL(context.Background(), req); err != nil {
		t.Errorf("CreateCRL with a 20-octet number: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tc.CreateCRL(ctx, testCRLRequest()); !errors.Is(err, context.Canceled) {
		t.Errorf("CreateCRL with a cancelled context: %v", err)
	}
}

// signCRL encodes tbs as it is and signs it with key, to make CRLs the
// builder never would.
func signCRL(t testing.TB, tbs tbsCertList, key crypto.Signer) []byte {
	t.Helper()
	raw, err := asn1.Marshal(tbs)
	if err != nil {
		t.Fatal(err)
	}
	return signRaw(t, raw, tbs.Signature.Algorithm, key)
}

// TestParseCRLRefuses: CRLs that break the profile are ErrMalformedCRL,
// even when correctly signed.
func TestParseCRLRefuses(t *testing.T) {
	tc := newTestCA(t, sigalg.Ed25519)
	key := tc.signer(t, KeyIssuing)
	suite, _ := sigalg.SuiteOf(key)
	base := func(entries ...CRLEntry) tbsCertList {
		revoked, err := encodeRevoked(entries)
		if err != nil {
			t.Fatal(err)
		}
		number, _ := asn1.Marshal(big.NewInt(1))
		return tbsCertList{Version: 1, Signature: algorithmIdentifier{Algorithm: suite.OID()},
			Issuer: asn1.RawValue{FullBytes: tc.IssuingCertificate().RawSubject}, ThisUpdate: testNow,
			NextUpdate: testNow.Add(time.Hour), RevokedCertificates: revoked,
			Extensions: []pkix.Extension{{Id: oidCRLNumber, Value: number}}}
	}
	if _, err := VerifyCRL(signCRL(t, base(), key), tc.IssuingCertificate()); err != nil {
		t.Fatalf("the unmodified CRL does not verify: %v", err)
	}
	rawEntry := func(serial *big.Int, exts ...pkix.Extension) asn1.RawValue {
		der, err := asn1.Marshal([]revokedEntry{{Serial: serial, RevokedAt: testNow, Extensions: exts}})
		if err != nil {
			t.Fatal(err)
		}
		return asn1.RawValue{FullBytes: der}
	}
	reason := func(r int) pkix.Extension {
		v, _ := asn1.Marshal(asn1.Enumerated(r))
		return pkix.Extension{Id: oidReasonCode, Value: v}
	}
	cases := map[string]func(*tbsCertList){
		"no CRL number": func(tbs *tbsCertList) { tbs.Extensions = nil },
		"critical delta CRL": func(tbs *tbsCertList) {
			tbs.Extensions = append(tbs.Extensions, pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 27}, Critical: true, Value: []byte{2, 1, 1}})
		},
		"negative serial":      func(tbs *tbsCertList) { tbs.RevokedCertificates = rawEntry(big.NewInt(-5)) },
		"zero serial":          func(tbs *tbsCertList) { tbs.RevokedCertificates = rawEntry(big.NewInt(0)) },
		"17-byte serial":       func(tbs *tbsCertList) { tbs.RevokedCertificates = rawEntry(new(big.Int).Lsh(big.NewInt(1), 128)) },
		"reason removeFromCRL": func(tbs *tbsCertList) { tbs.RevokedCertificates = rawEntry(big.NewInt(5), reason(8)) },
		"critical entry issuer": func(tbs *tbsCertList) {
			tbs.RevokedCertificates = rawEntry(big.NewInt(5), pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 29}, Critical: true, Value: []byte{0x30, 0}})
		},
		"version 1 (v1 CRL)":     func(tbs *tbsCertList) { tbs.Version = 0 },
		"ECDSA OID, Ed25519 key": func(tbs *tbsCertList) { tbs.Signature.Algorithm = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2} },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			tbs := base()
			mutate(&tbs)
			_, err := VerifyCRL(signCRL(t, tbs, key), tc.IssuingCertificate())
			if !errors.Is(err, ErrMalformedCRL) && !errors.Is(err, ErrUntrusted) {
				t.Fatalf("VerifyCRL: %v, want a refusal", err)
			}
		})
	}
	good := createCRL(t, tc.CA, testCRLRequest())
	if _, err := ParseCRL(append(bytes.Clone(good), 0)); !errors.Is(err, ErrMalformedCRL) {
		t.Errorf("ParseCRL with a trailing byte: %v", err)
	}
	if _, err := ParseCRL(good[:len(good)-1]); !errors.Is(err, ErrMalformedCRL) {
		t.Errorf("ParseCRL of a truncated CRL: %v", err)
	}
	if _, err := VerifyCRL(good, nil); !errors.Is(err, ErrUntrusted) {
		t.Errorf("VerifyCRL without issuer: %v", err)
	}
}

func TestCRLCheckTime(t *testing.T) {
	tc := newTestCA(t, sigalg.Ed25519)
	crl, err := ParseCRL(createCRL(t, tc.CA, testCRLRequest()))
	if err != nil {
		t.Fatal(err)
	}
	for at, ok := range map[time.Time]bool{
		testNow: true, testNow.Add(24 * time.Hour): true,
		testNow.Add(-time.Second): false, testNow.Add(24*time.Hour + time.Second): false,
	} {
		if err := crl.CheckTime(at); (err == nil) != ok || (err != nil && !errors.Is(err, ErrExpired)) {
			t.Errorf("CheckTime(%v) = %v, want ok=%v", at, err, ok)
		}
	}
}

func TestCRLName(t *testing.T) {
	a, b := newTestCA(t, sigalg.ECDSAP256), newTestCA(t, sigalg.ECDSAP256)
	if a.CRLName() == b.CRLName() || len(a.CRLName()) != len("issuing-")+16 {
		t.Errorf("CRL names %q and %q: want distinct issuing-<16 hex>", a.CRLName(), b.CRLName())
	}
	// The name survives a restart: it comes from the key.
	again, err := Open(context.Background(), a.km, a.dir, Config{Now: fixedClock})
	if err != nil {
		t.Fatal(err)
	}
	if again.CRLName() != a.CRLName() {
		t.Errorf("CRL name changed across Open: %q, %q", a.CRLName(), again.CRLName())
	}
}

// FuzzParseCRL: ParseCRL never panics and classifies every refusal; a CRL
// it accepts re-parses to the same entries; VerifyCRL accepts only a CRL
// the CA signed (the fuzzer cannot forge a signature).
func FuzzParseCRL(f *testing.F) {
	classical := newTestCA(f, sigalg.ECDSAP256)
	pq := newTestCA(f, sigalg.MLDSA44)
	signed := map[string]bool{}
	entries := []CRLEntry{
		{Serial: testSerial(1), RevokedAt: testNow, Reason: ReasonKeyCompromise},
		{Serial: testSerial(2), RevokedAt: testNow, Reason: ReasonUnspecified},
		{Serial: [SerialSize]byte{0xff, 15: 1}, RevokedAt: testNow, Reason: ReasonCertificateHold},
	}
	for _, tc := range []*testCA{classical, pq} {
		for _, req := range []CRLRequest{testCRLRequest(), testCRLRequest(entries...)} {
			der := createCRL(f, tc.CA, req)
			crl, err := ParseCRL(der)
			if err != nil {
				f.Fatal(err)
			}
			signed[string(crl.RawTBS)] = true
			f.Add(der)
			f.Add(der[:len(der)/2])
		}
	}
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		crl, err := ParseCRL(der)
		if err != nil {
			if !errors.Is(err, ErrMalformedCRL) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		again, err := ParseCRL(crl.Raw)
		if err != nil || len(again.Entries) != len(crl.Entries) {
			t.Fatalf("an accepted CRL does not parse again: %v", err)
		}
		for _, tc := range []*testCA{classical, pq} {
			if _, err := VerifyCRL(der, tc.IssuingCertificate()); err == nil && !signed[string(crl.RawTBS)] {
				t.Fatal("VerifyCRL accepted a CRL the CA never signed")
			} else if err != nil && !errors.Is(err, ErrUntrusted) {
				t.Fatalf("unclassified error: %v", err)
			}
		}
	})
}

// TestEncodeRevokedMatchesEncodingASN1: the hand-written encoder writes
// what encoding/asn1 writes, byte for byte, around every boundary: serial
// lengths and signs, UTCTime/GeneralizedTime years, every reason.
func TestEncodeRevokedMatchesEncodingASN1(t *testing.T) {
	var entries []CRLEntry
	serials := [][SerialSize]byte{testSerial(1), {15: 1}, {0x80}, {0x7f, 15: 9}, {0, 0x80, 15: 3}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	times := []time.Time{
		time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1949, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(2049, 12, 31, 23, 59, 59, 999, time.UTC), time.Date(2050, 1, 1, 0, 0, 0, 0, time.UTC),
		testNow.In(time.FixedZone("UTC+5", 5*3600)).Add(1500 * time.Millisecond), time.Date(9999, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	for i, s := range serials {
		for j, at := range times {
			for _, r := range []int{0, 1, 2, 3, 4, 5, 6, 9} {
				s[SerialSize-2] = byte(i*len(times) + j) // distinct serials
				entries = append(entries, CRLEntry{Serial: s, RevokedAt: at, Reason: r})
			}
		}
	}
	got, err := encodeRevoked(entries)
	if err != nil {
		t.Fatal(err)
	}
	ref := make([]revokedEntry, len(entries))
	for i, e := range entries {
		ref[i] = revokedEntry{Serial: new(big.Int).SetBytes(e.Serial[:]), RevokedAt: crlTime(e.RevokedAt)}
		if e.Reason != ReasonUnspecified {
			v, _ := asn1.Marshal(asn1.Enumerated(e.Reason))
			ref[i].Extensions = []pkix.Extension{{Id: oidReasonCode, Value: v}}
		}
	}
	want, err := asn1.Marshal(ref)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.FullBytes, want) {
		t.Fatalf("hand-written DER differs from encoding/asn1's (%d vs %d bytes)", len(got.FullBytes), len(want))
	}
}
