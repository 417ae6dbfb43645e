// Package sigalgtest makes, for tests, the degenerate keys that sigalg's key
// policy refuses, together with working signers for them: it shows what an
// attacker holds who signs for such a key from public data alone. Nothing
// in it is for production code.
package sigalgtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha3"
	"crypto/sha512"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"

	"filippo.io/edwards25519"
	"github.com/cloudflare/circl/sign"
	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/cloudflare/circl/sign/mldsa/mldsa87"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// mldsaParams are the FIPS 204 dimensions a key encoding depends on.
type mldsaParams struct {
	scheme  sign.Scheme
	k, l    int
	eta     int
	etaBits int
}

var params = map[sigalg.ID]mldsaParams{
	sigalg.MLDSA44: {mldsa44.Scheme(), 4, 4, 2, 3},
	sigalg.MLDSA65: {mldsa65.Scheme(), 6, 5, 4, 4},
	sigalg.MLDSA87: {mldsa87.Scheme(), 8, 7, 2, 3},
}

const (
	n    = 256
	q    = 8380417
	d    = 13
	trSz = 64
)

// MLDSAParams returns the number of polynomials of t1 (k) and of s1 (l)
// and the bound η of the secret coefficients of suite id.
func MLDSAParams(id sigalg.ID) (k, l, eta int, err error) {
	p, ok := params[id]
	if !ok {
		return 0, 0, 0, fmt.Errorf("sigalgtest: %s is not an ML-DSA suite", id)
	}
	return p.k, p.l, p.eta, nil
}

// ZeroMLDSA returns the ML-DSA key of suite id with s1 = s2 = t0 = 0: its
// public key is ρ ‖ t1 = 0, and it signs validly for that public key. This
// is the forgery of issue 10: anyone who sees such a public key can build
// this signer, since everything in it is public.
func ZeroMLDSA(id sigalg.ID, rho [32]byte) (crypto.Signer, error) {
	p, ok := params[id]
	if !ok {
		return nil, fmt.Errorf("sigalgtest: %s is not an ML-DSA suite", id)
	}
	return MLDSAWithZeroS1(id, rho, make([]int, p.k*n))
}

// MLDSAWithZeroS1 returns the consistent ML-DSA private key of suite id
// with s1 = 0 and the given s2 (k·256 coefficients in [-η, η]): t = s2, so
// every coefficient of t1 is 0 or 1023. The key signs validly; its secret
// is as public as its public key.
func MLDSAWithZeroS1(id sigalg.ID, rho [32]byte, s2 []int) (crypto.Signer, error) {
	p, ok := params[id]
	if !ok {
		return nil, fmt.Errorf("sigalgtest: %s is not an ML-DSA suite", id)
	}
	if len(s2) != p.k*n {
		return nil, fmt.Errorf("sigalgtest: s2 has %d coefficients, want %d", len(s2), p.k*n)
	}
	t1 := make([]uint32, p.k*n)
	t0 := make([]uint32, p.k*n)
	etaPacked := make([]uint32, (p.l+p.k)*n)
	for i := range p.l * n {
		etaPacked[i] = uint32(p.eta) // η - 0
	}
	for i, c := range s2 {
		if c < -p.eta || c > p.eta {
			return nil, fmt.Errorf("sigalgtest: s2 coefficient %d outside [-%d, %d]", c, p.eta, p.eta)
		}
		etaPacked[p.l*n+i] = uint32(p.eta - c)
		// Power2Round of t = c mod q: c ≥ 0 gives (0, c); c < 0 gives
		// t = q + c = 1023·2^13 + 1 + c, so (1023, c + 1).
		hi, lo := 0, c
		if c < 0 {
			hi, lo = (q-1)>>d, c+1
		}
		t1[i] = uint32(hi)
		t0[i] = uint32(1<<(d-1) - lo)
	}
	pub := append(rho[:], packBits(t1, 10)...)
	var sk []byte
	sk = append(sk, rho[:]...)
	sk = append(sk, make([]byte, 32)...) // K, the signing nonce key: any value
	sk = append(sk, sha3.SumSHAKE256(pub, trSz)...)
	sk = append(sk, packBits(etaPacked, p.etaBits)...)
	sk = append(sk, packBits(t0, d)...)
	key, err := p.scheme.UnmarshalBinaryPrivateKey(sk)
	if err != nil {
		return nil, err
	}
	return key.(crypto.Signer), nil
}

// MLDSAPublicKey returns the SubjectPublicKeyInfo of the ML-DSA public key
// ρ ‖ t1 of suite id, t1 given as k·256 coefficients below 1024. It builds
// the bytes directly, as an attacker would, whatever the key policy says.
func MLDSAPublicKey(id sigalg.ID, rho [32]byte, t1 []uint32) ([]byte, error) {
	p, ok := params[id]
	if !ok {
		return nil, fmt.Errorf("sigalgtest: %s is not an ML-DSA suite", id)
	}
	if len(t1) != p.k*n {
		return nil, fmt.Errorf("sigalgtest: t1 has %d coefficients, want %d", len(t1), p.k*n)
	}
	for _, c := range t1 {
		if c >= 1<<10 {
			return nil, errors.New("sigalgtest: t1 coefficient above 1023")
		}
	}
	pk, err := p.scheme.UnmarshalBinaryPublicKey(append(rho[:], packBits(t1, 10)...))
	if err != nil {
		return nil, err
	}
	return sigalg.MarshalPublicKey(pk)
}

// ExpandedPKCS8 returns the PKCS #8 encoding of an ML-DSA private key in
// the RFC 9881 expanded form (no seed), as another tool might write it.
func ExpandedPKCS8(id sigalg.ID, key crypto.Signer) ([]byte, error) {
	raw, err := key.(sign.PrivateKey).MarshalBinary()
	if err != nil {
		return nil, err
	}
	return ExpandedPKCS8Raw(id, raw)
}

// ExpandedPKCS8Raw wraps the FIPS 204 encoding of an expanded private key,
// whatever its contents, in PKCS #8.
func ExpandedPKCS8Raw(id sigalg.ID, raw []byte) ([]byte, error) {
	suite, err := id.Suite()
	if err != nil {
		return nil, err
	}
	inner, err := marshalOctets(raw)
	if err != nil {
		return nil, err
	}
	return marshalPKCS8(suite, inner)
}

// packBits is FIPS 204's SimpleBitPack: each value in width bits,
// little-endian, one after another.
func packBits(vals []uint32, width int) []byte {
	out := make([]byte, 0, len(vals)*width/8)
	var acc uint64
	have := 0
	for _, v := range vals {
		acc |= uint64(v) << have
		have += width
		for have >= 8 {
			out = append(out, byte(acc))
			acc >>= 8
			have -= 8
		}
	}
	return out
}

// P256Scalar returns the P-256 key with private scalar k, or n-|k| for k
// negative; 0 < |k| < n.
func P256Scalar(k int64) (*ecdsa.PrivateKey, error) {
	curveN := elliptic.P256().Params().N
	scalar := big.NewInt(k)
	if k < 0 {
		scalar.Add(scalar, curveN)
	}
	buf := make([]byte, 32)
	scalar.FillBytes(buf)
	return ecdsa.ParseRawPrivateKey(elliptic.P256(), buf)
}

// Ed25519Scalar signs as the Ed25519 key with secret scalar k (public key
// k·B), or L-|k| for k negative. An RFC 8032 key is a hashed seed and never
// a chosen scalar, but a verifier sees only the public key: whoever knows
// its scalar makes signatures that verify.
type Ed25519Scalar struct {
	scalar *edwards25519.Scalar
	public ed25519.PublicKey
}

// NewEd25519Scalar returns the signer of scalar k, 0 < |k| < 2^31.
func NewEd25519Scalar(k int64) (*Ed25519Scalar, error) {
	if k == 0 || k >= 1<<31 || k <= -(1<<31) {
		return nil, fmt.Errorf("sigalgtest: scalar %d out of range", k)
	}
	var le [32]byte
	mag := k
	if k < 0 {
		mag = -k
	}
	binary.LittleEndian.PutUint32(le[:], uint32(mag))
	s, err := edwards25519.NewScalar().SetCanonicalBytes(le[:])
	if err != nil {
		return nil, err
	}
	if k < 0 {
		s.Negate(s)
	}
	pub := new(edwards25519.Point).ScalarBaseMult(s).Bytes()
	return &Ed25519Scalar{scalar: s, public: pub}, nil
}

// Public returns k·B as an Ed25519 public key.
func (e *Ed25519Scalar) Public() crypto.PublicKey { return e.public }

// Sign makes a pure Ed25519 signature (RFC 8032) of msg with the scalar:
// R = r·B, S = r + SHA-512(R ‖ A ‖ msg)·k mod L.
func (e *Ed25519Scalar) Sign(rand io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts.HashFunc() != crypto.Hash(0) {
		return nil, errors.New("sigalgtest: Ed25519 signs the message itself")
	}
	nonce := make([]byte, 64)
	if _, err := io.ReadFull(rand, nonce); err != nil {
		return nil, err
	}
	r, err := edwards25519.NewScalar().SetUniformBytes(nonce)
	if err != nil {
		return nil, err
	}
	R := new(edwards25519.Point).ScalarBaseMult(r).Bytes()
	h := sha512.New()
	h.Write(R)
	h.Write(e.public)
	h.Write(msg)
	c, err := edwards25519.NewScalar().SetUniformBytes(h.Sum(nil))
	if err != nil {
		return nil, err
	}
	S := edwards25519.NewScalar().MultiplyAdd(c, e.scalar, r)
	return append(R, S.Bytes()...), nil
}

func marshalOctets(b []byte) ([]byte, error) { return asn1.Marshal(b) }

// marshalPKCS8 wraps the suite's private key encoding in a PrivateKeyInfo
// whose algorithm has no parameters, as RFC 9881 requires.
func marshalPKCS8(suite sigalg.Suite, inner []byte) ([]byte, error) {
	type algorithm struct{ Algorithm asn1.ObjectIdentifier }
	return asn1.Marshal(struct {
		Version    int
		Algorithm  algorithm
		PrivateKey []byte
	}{Algorithm: algorithm{suite.OID()}, PrivateKey: inner})
}

// CSR builds a PKCS #10 request (RFC 2986) for key, subject CN=commonName,
// no attributes, signed by key: the bytes an attacker sends, made without
// the checks pki.CreateCSR applies to its own requests.
func CSR(key crypto.Signer, commonName string) ([]byte, error) {
	suite, err := sigalg.SuiteOf(key.Public())
	if err != nil {
		return nil, err
	}
	spki, err := sigalg.MarshalPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	subject, err := asn1.Marshal(pkix.Name{CommonName: commonName}.ToRDNSequence())
	if err != nil {
		return nil, err
	}
	info, err := asn1.Marshal(struct {
		Version    int
		Subject    asn1.RawValue
		PublicKey  asn1.RawValue
		Attributes []asn1.RawValue `asn1:"tag:0"`
	}{Subject: asn1.RawValue{FullBytes: subject}, PublicKey: asn1.RawValue{FullBytes: spki}})
	if err != nil {
		return nil, err
	}
	sig, err := suite.Sign(key, info)
	if err != nil {
		return nil, err
	}
	type algorithm struct{ Algorithm asn1.ObjectIdentifier }
	return asn1.Marshal(struct {
		Info      asn1.RawValue
		Algorithm algorithm
		Signature asn1.BitString
	}{asn1.RawValue{FullBytes: info}, algorithm{suite.OID()}, asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}})
}
