package pki

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// TestVerifyChainEverySuite issues a device certificate for every device
// suite from a CA of every CA suite and verifies it; classical chains are
// also verified by crypto/x509.
func TestVerifyChainEverySuite(t *testing.T) {
	for _, caSuite := range append(caSuites, sigalg.Ed25519) {
		tc := newTestCA(t, caSuite)
		chain := tc.Chain()
		for _, s := range sigalg.All() {
			t.Run(string(caSuite)+"/"+string(s.ID()), func(t *testing.T) {
				iss := issueDevice(t, tc.CA, deviceKey(t, s.ID(), "every").Public(), "every")
				leaf, err := VerifyChain(iss.DER, chain[:1], chain[1:], testNow, x509.ExtKeyUsageClientAuth)
				if err != nil {
					t.Fatalf("VerifyChain: %v", err)
				}
				if !bytes.Equal(leaf.Raw, iss.DER) {
					t.Error("VerifyChain returned another certificate")
				}
				if tlsCapable(caSuite) && (s.ID() == sigalg.ECDSAP256 || s.ID() == sigalg.Ed25519) {
					if err := stdVerify(iss.DER, chain, testNow, x509.ExtKeyUsageClientAuth); err != nil {
						t.Errorf("crypto/x509 Verify: %v", err)
					}
				}
			})
		}
	}
}

func stdVerify(leafDER []byte, chain [][]byte, now time.Time, usage x509.ExtKeyUsage) error {
	leaf, err := x509.ParseCertificate(leafDER)
	if err != nil {
		return err
	}
	opts := x509.VerifyOptions{Intermediates: x509.NewCertPool(), Roots: x509.NewCertPool(), CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}}
	for i, der := range chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return err
		}
		if i == len(chain)-1 {
			opts.Roots.AddCert(c)
		} else {
			opts.Intermediates.AddCert(c)
		}
	}
	_, err = leaf.Verify(opts)
	return err
}

type chainCase struct {
	name  string
	leaf  []byte
	inter [][]byte
	roots [][]byte
	now   time.Time
	usage x509.ExtKeyUsage
	want  error
	// stdAgrees: crypto/x509 must reach the same verdict (classical CAs).
	stdAgrees bool
}

func TestVerifyChainRefuses(t *testing.T) {
	for _, caSuite := range caSuites {
		t.Run(string(caSuite), func(t *testing.T) {
			for _, c := range chainCases(t, caSuite) {
				t.Run(c.name, func(t *testing.T) {
					_, err := VerifyChain(c.leaf, c.inter, c.roots, c.now, c.usage)
					t.Logf("VerifyChain: %v", err)
					if c.want == nil && err != nil {
						t.Fatalf("VerifyChain: %v", err)
					}
					if c.want != nil && !errors.Is(err, c.want) {
						t.Fatalf("VerifyChain = %v, want %v", err, c.want)
					}
					if c.stdAgrees && caSuite == sigalg.ECDSAP256 {
						if stdErr := stdVerify(c.leaf, append(c.inter, c.roots...), c.now, c.usage); (stdErr == nil) != (c.want == nil) {
							t.Errorf("crypto/x509 disagrees: %v", stdErr)
						}
					}
				})
			}
		})
	}
}

// chainCases are certificates the builder never makes, each breaking one
// rule, next to the valid chains they derive from.
func chainCases(t *testing.T, caSuite sigalg.ID) []chainCase {
	tc := newTestCA(t, caSuite)
	other := newTestCA(t, caSuite) // same names, other keys
	rootKey, issuingKey := tc.signer(t, KeyRoot), tc.signer(t, KeyIssuing)
	chain := tc.Chain()
	root, issuing := mustParsed(t, chain[1]), mustParsed(t, chain[0])
	devKey := deviceKey(t, sigalg.ECDSAP256, "refuse")
	leaf := issueDevice(t, tc.CA, devKey.Public(), "refuse").DER
	foreign := issueDevice(t, other.CA, devKey.Public(), "refuse").DER
	notAfter := mustParse(t, leaf).NotAfter

	tamperedSig := bytes.Clone(leaf)
	tamperedSig[len(tamperedSig)-3] ^= 1
	tamperedTBS := bytes.Clone(leaf)
	hex := []byte(testIdentity("refuse").String())
	i := bytes.Index(tamperedTBS, hex)
	tamperedTBS[i] ^= 1 // still a printable hex digit or letter

	withoutExt := func(der []byte, key crypto.Signer, oid asn1.ObjectIdentifier) []byte {
		return resign(t, der, key, func(tbs *tbsCertificate) { tbs.Extensions = dropExt(tbs.Extensions, oid) })
	}
	setExt := func(der []byte, key crypto.Signer, oid asn1.ObjectIdentifier, critical bool, value any) []byte {
		v, err := asn1.Marshal(value)
		if err != nil {
			t.Fatal(err)
		}
		return resign(t, der, key, func(tbs *tbsCertificate) {
			tbs.Extensions = append(dropExt(tbs.Extensions, oid), pkix.Extension{Id: oid, Critical: critical, Value: v})
		})
	}
	shortRoot := resign(t, chain[1], rootKey, func(tbs *tbsCertificate) { tbs.Validity.NotAfter = testNow.Add(time.Hour) })
	notCA := setExt(chain[0], rootKey, oidBasicConstraints, true, basicConstraints{MaxPathLen: -1})
	noCertSign := setExt(chain[0], rootKey, oidKeyUsage, true, keyUsageBits([]int{kuDigitalSignature, kuCRLSign}))
	issuingEKUServer := setExt(chain[0], rootKey, oidExtKeyUsage, false, []asn1.ObjectIdentifier{oidServerAuth})
	critical := setExt(leaf, issuingKey, asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, true, []byte{1})
	noEKU := withoutExt(leaf, issuingKey, oidExtKeyUsage)
	// A leaf signed by the other CA's issuing key, with no authority key
	// identifier, reaches the signature check.
	forgedNoAKI := withoutExt(foreign, other.signer(t, KeyIssuing), oidAuthorityKeyID)
	wrongAlg := resign(t, leaf, issuingKey, func(tbs *tbsCertificate) { tbs.Signature.Algorithm = siblingOID(t, caSuite) })

	// Path length: issuing (pathLen 0) → sub CA → leaf breaks the issuing
	// CA's limit; root (pathLen 1) → sub (pathLen 0) → leaf is within the
	// root's; root → A (pathLen 1) → B → leaf breaks the root's.
	subUnderIssuing, subUnderIssuingKey := subCA(t, issuing, issuingKey, "Sub", 0)
	leafUnderSub := subLeaf(t, subUnderIssuing, subUnderIssuingKey)
	subUnderRoot, subUnderRootKey := subCA(t, root, rootKey, "Sub", 0)
	leafUnderRootSub := subLeaf(t, subUnderRoot, subUnderRootKey)
	a, aKey := subCA(t, root, rootKey, "A", 1)
	b, bKey := subCA(t, a, aKey, "B", 0)
	leafUnderB := subLeaf(t, b, bKey)

	// good and bad take the intermediates and, last, the root.
	good := func(name string, leaf []byte, chain ...[]byte) chainCase {
		n := len(chain) - 1
		return chainCase{name: name, leaf: leaf, inter: chain[:n], roots: chain[n:], now: testNow, usage: x509.ExtKeyUsageClientAuth, stdAgrees: true}
	}
	bad := func(name string, want error, leaf []byte, chain ...[]byte) chainCase {
		c := good(name, leaf, chain...)
		c.want = want
		return c
	}
	at := func(c chainCase, now time.Time) chainCase { c.now = now; return c }
	for_ := func(c chainCase, u x509.ExtKeyUsage) chainCase { c.usage = u; return c }
	nonStd := func(c chainCase) chainCase { c.stdAgrees = false; return c }
	return []chainCase{
		good("valid", leaf, chain...),
		at(good("valid at NotAfter", leaf, chain...), notAfter),
		for_(good("any usage", leaf, chain...), x509.ExtKeyUsageAny),
		good("valid under a root sub CA", leafUnderRootSub, subUnderRoot.Raw, chain[1]),
		at(bad("expired", ErrExpired, leaf, chain...), notAfter.Add(time.Second)),
		at(bad("not yet valid", ErrExpired, leaf, chain...), testNow.Add(-ClockSkew-time.Second)),
		at(bad("root expired", ErrExpired, leaf, chain[0], shortRoot), testNow.Add(2*time.Hour)),
		bad("foreign CA", ErrUntrusted, leaf, other.Chain()...),
		bad("forged by another key of the same name", ErrUntrusted, forgedNoAKI, chain...),
		bad("tampered signature", ErrUntrusted, tamperedSig, chain...),
		bad("tampered TBS", ErrUntrusted, tamperedTBS, chain...),
		bad("CA:FALSE intermediate", ErrUntrusted, leaf, notCA, chain[1]),
		bad("intermediate without keyCertSign", ErrUntrusted, leaf, noCertSign, chain[1]),
		bad("intermediate restricted to serverAuth", ErrUntrusted, leaf, issuingEKUServer, chain[1]),
		bad("pathLen of the issuing CA", ErrUntrusted, leafUnderSub, subUnderIssuing.Raw, chain[0], chain[1]),
		bad("pathLen of the root", ErrUntrusted, leafUnderB, b.Raw, a.Raw, chain[1]),
		for_(bad("wrong EKU", ErrUntrusted, leaf, chain...), x509.ExtKeyUsageServerAuth),
		nonStd(bad("leaf without EKU", ErrUntrusted, noEKU, chain...)),
		bad("unhandled critical extension", ErrUntrusted, critical, chain...),
		nonStd(bad("signature algorithm not the issuer's", ErrUntrusted, wrongAlg, chain...)),
		nonStd(chainCase{name: "root only as intermediate", leaf: leaf, inter: chain, now: testNow, want: ErrUntrusted}),
		nonStd(bad("garbage leaf", ErrMalformedCertificate, []byte("not a certificate"), chain...)),
		nonStd(bad("trailing data", ErrMalformedCertificate, append(bytes.Clone(leaf), 0), chain...)),
		nonStd(bad("too many intermediates", ErrUntrusted, leaf, append(bytes9(chain[0]), chain[1])...)),
	}
}

func bytes9(der []byte) [][]byte {
	out := make([][]byte, maxIntermediates+1)
	for i := range out {
		out[i] = der
	}
	return out
}

func mustParsed(t testing.TB, der []byte) *parsedCert {
	t.Helper()
	p, err := parseCert(der)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func dropExt(exts []pkix.Extension, oid asn1.ObjectIdentifier) []pkix.Extension {
	var out []pkix.Extension
	for _, e := range exts {
		if !e.Id.Equal(oid) {
			out = append(out, e)
		}
	}
	return out
}

// siblingOID is a signature algorithm close to suite's but not its own.
func siblingOID(t testing.TB, suite sigalg.ID) asn1.ObjectIdentifier {
	if suite == sigalg.ECDSAP256 {
		return asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3} // ecdsa-with-SHA384
	}
	s, _ := sigalg.MLDSA44.Suite()
	return s.OID()
}

// subCA makes a CA certificate with a fresh key of the parent's suite,
// signed by parent.
func subCA(t testing.TB, parent *parsedCert, parentKey crypto.Signer, cn string, pathLen int) (*parsedCert, crypto.Signer) {
	t.Helper()
	suite, _ := sigalg.SuiteOf(parentKey.Public())
	key, err := suite.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	name, _ := encodeName(pkix.Name{CommonName: cn})
	tmpl, err := caTemplate(rand.Reader, key.Public(), parent.RawSubject, name, pathLen, testNow, time.Hour*24*365, parent)
	if err != nil {
		t.Fatal(err)
	}
	der, err := sign(tmpl, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	return mustParsed(t, der), key
}

func subLeaf(t testing.TB, issuer *parsedCert, key crypto.Signer) []byte {
	t.Helper()
	req := DeviceRequest{Identity: testIdentity("sub"), PublicKey: deviceKey(t, sigalg.Ed25519, "sub").Public(), Validity: time.Hour}
	tmpl, err := deviceTemplate(rand.Reader, issuer, "Hallmark", req, testNow)
	if err != nil {
		t.Fatal(err)
	}
	der, err := sign(tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestVerifyDeviceRefuses(t *testing.T) {
	tc := newTestCA(t, sigalg.MLDSA65)
	server, err := tc.IssueServer(t.Context(), []string{"platform.example"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other := newTestCA(t, sigalg.MLDSA65)
	foreign := issueDevice(t, other.CA, deviceKey(t, sigalg.ECDSAP256, "x").Public(), "x")
	for name, chain := range map[string][][]byte{
		"empty":          nil,
		"server cert":    server.Certificate,
		"foreign device": {foreign.DER},
		"the issuing CA": {tc.Chain()[0]},
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := tc.VerifyDevice(chain, testNow); err == nil {
				t.Fatal("VerifyDevice accepted it")
			}
		})
	}
}

func TestDeviceIdentityRefuses(t *testing.T) {
	tc := newTestCA(t, sigalg.ECDSAP256)
	leaf := issueDevice(t, tc.CA, deviceKey(t, sigalg.ECDSAP256, "id").Public(), "id")
	key := tc.signer(t, KeyIssuing)
	cnMismatch := resign(t, leaf.DER, key, func(tbs *tbsCertificate) {
		tbs.Subject.FullBytes, _ = encodeName(pkix.Name{CommonName: testIdentity("other").String()})
	})
	v, _ := asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte("urn:example:x")}})
	otherURI := resign(t, leaf.DER, key, func(tbs *tbsCertificate) {
		tbs.Extensions = append(dropExt(tbs.Extensions, oidSubjectAltName), pkix.Extension{Id: oidSubjectAltName, Value: v})
	})
	for name, der := range map[string][]byte{"CN mismatch": cnMismatch, "other URI": otherURI, "no SAN": tc.Chain()[0]} {
		t.Run(name, func(t *testing.T) {
			if _, err := DeviceIdentity(mustParse(t, der)); !errors.Is(err, ErrMalformedCertificate) {
				t.Fatalf("DeviceIdentity = %v", err)
			}
		})
	}
}

func TestParseCertificateRefuses(t *testing.T) {
	tc := newTestCA(t, sigalg.ECDSAP256)
	key := tc.signer(t, KeyIssuing)
	leaf := issueDevice(t, tc.CA, deviceKey(t, sigalg.ECDSAP256, "parse").Public(), "parse").DER
	v1 := resign(t, leaf, key, func(tbs *tbsCertificate) { tbs.Version = 0; tbs.Extensions = nil })
	withParams := resign(t, leaf, key, func(tbs *tbsCertificate) { tbs.Signature.Parameters = asn1.NullRawValue })
	for name, der := range map[string][]byte{
		"empty":            nil,
		"oversized":        make([]byte, MaxCertificateDER+1),
		"v1":               v1,
		"parameters":       withParams,
		"truncated":        leaf[:len(leaf)-1],
		"trailing byte":    append(bytes.Clone(leaf), 0x00),
		"not DER sequence": []byte{0x31, 0x00},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseCertificate(der); !errors.Is(err, ErrMalformedCertificate) {
				t.Fatalf("ParseCertificate = %v", err)
			}
		})
	}
}
