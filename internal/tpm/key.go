package tpm

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/asn1"
	"fmt"
	"io"
	"math/big"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// TPM is a TPM 2.0 at an address. It holds no connection: each operation
// opens one (see the package comment), so a TPM is safe for concurrent
// use as far as the TPM itself serialises commands.
type TPM struct {
	addr Address
}

// Open checks that the TPM at addr answers and returns it.
func Open(ctx context.Context, addr Address) (*TPM, error) {
	t := &TPM{addr: addr}
	err := t.do(ctx, func(transport.TPM) error { return nil })
	if err != nil {
		return nil, err
	}
	return t, nil
}

// Address returns where the TPM is.
func (t *TPM) Address() Address { return t.addr }

func (t *TPM) do(ctx context.Context, fn func(transport.TPM) error) error {
	conn, err := connect(ctx, t.addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	return fn(conn)
}

// KeyBlob is a TPM key as it is stored outside the TPM: its public area
// (TPM2B_PUBLIC) and its private area (TPM2B_PRIVATE) as the TPM encrypted
// and integrity-protected it under its storage root key. Neither is a
// secret: the private area opens only inside the TPM whose SRK wrapped it.
type KeyBlob struct {
	Public  []byte `json:"public"`
	Private []byte `json:"private"`
}

// MaxBlobPart bounds each part of a KeyBlob: a P-256 public area is about
// 90 bytes and a wrapped private area about 130.
const MaxBlobPart = 1024

// signingKeyTemplate is an ECDSA P-256 signing key that cannot leave the
// TPM: fixedTPM and fixedParent forbid duplication, sensitiveDataOrigin
// makes the TPM generate the private key itself. It is not restricted, so
// it signs any digest (proofs of possession, TLS handshakes); its scheme is
// left to each signature so that TLS can ask for SHA-384.
var signingKeyTemplate = tpm2.TPMTPublic{
	Type:    tpm2.TPMAlgECC,
	NameAlg: tpm2.TPMAlgSHA256,
	ObjectAttributes: tpm2.TPMAObject{
		FixedTPM:            true,
		FixedParent:         true,
		SensitiveDataOrigin: true,
		UserWithAuth:        true,
		SignEncrypt:         true,
	},
	Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
		CurveID: tpm2.TPMECCNistP256,
		Scheme:  tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgNull},
	}),
	Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{}),
}

// srk makes the storage root key: the TCG's reference ECC P-256 SRK
// template under the owner hierarchy, which the TPM derives from its owner
// seed, so it is the same key every time on the same TPM and a different
// one on any other. The caller flushes it.
func srk(conn transport.TPM) (tpm2.NamedHandle, error) {
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.TPMRHOwner,
		InPublic:      tpm2.New2B(tpm2.ECCSRKTemplate),
	}.Execute(conn)
	if err != nil {
		return tpm2.NamedHandle{}, fmt.Errorf("create storage root key (is the owner hierarchy's password set?): %w", err)
	}
	return tpm2.NamedHandle{Handle: rsp.ObjectHandle, Name: rsp.Name}, nil
}

func flush(conn transport.TPM, h tpm2.TPMHandle) {
	// Best effort: on a resource manager the object goes with the
	// connection anyway, and the operation's own error is the one to report.
	_, _ = tpm2.FlushContext{FlushHandle: h}.Execute(conn)
}

// CreateKey has the TPM generate a new ECDSA P-256 signing key under its
// storage root key, and returns the key with its blob.
func (t *TPM) CreateKey(ctx context.Context) (*Key, KeyBlob, error) {
	return t.createKey(ctx, signingKeyTemplate)
}

// createKey has the TPM create a key from template under its storage root
// key and loads it once, which checks the blob it returns.
func (t *TPM) createKey(ctx context.Context, template tpm2.TPMTPublic) (*Key, KeyBlob, error) {
	var blob KeyBlob
	err := t.do(ctx, func(conn transport.TPM) error {
		parent, err := srk(conn)
		if err != nil {
			return err
		}
		defer flush(conn, parent.Handle)
		rsp, err := tpm2.Create{ParentHandle: parent, InPublic: tpm2.New2B(template)}.Execute(conn)
		if err != nil {
			return fmt.Errorf("create key: %w", err)
		}
		blob = KeyBlob{Public: tpm2.Marshal(rsp.OutPublic), Private: tpm2.Marshal(rsp.OutPrivate)}
		return nil
	})
	if err != nil {
		return nil, KeyBlob{}, fmt.Errorf("tpm %s: %w", t.addr, err)
	}
	key, err := t.LoadKey(ctx, blob)
	if err != nil {
		return nil, KeyBlob{}, err
	}
	return key, blob, nil
}

// LoadKey checks blob and loads it once into the TPM, which proves that
// this TPM's storage root key wrapped it, and returns the key.
func (t *TPM) LoadKey(ctx context.Context, blob KeyBlob) (*Key, error) {
	pub, err := ParseKeyBlob(blob)
	if err != nil {
		return nil, err
	}
	k := &Key{tpm: t, blob: blob, pub: pub}
	if err := t.do(ctx, func(conn transport.TPM) error {
		parent, h, err := k.load(conn)
		if err != nil {
			return err
		}
		flush(conn, h.Handle)
		flush(conn, parent)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("tpm %s: %w", t.addr, err)
	}
	return k, nil
}

// ParseKeyBlob checks a blob read from storage and returns its public key.
// It refuses a key the TPM would let out (no fixedTPM or fixedParent, or
// not generated inside the TPM), or any key but an ECDSA P-256 signing key.
func ParseKeyBlob(blob KeyBlob) (*ecdsa.PublicKey, error) {
	if len(blob.Public) == 0 || len(blob.Public) > MaxBlobPart || len(blob.Private) == 0 || len(blob.Private) > MaxBlobPart {
		return nil, fmt.Errorf("%w: parts of %d and %d bytes, want 1 to %d", ErrKeyBlob, len(blob.Public), len(blob.Private), MaxBlobPart)
	}
	pub2b, err := tpm2.Unmarshal[tpm2.TPM2BPublic](blob.Public)
	if err != nil {
		return nil, fmt.Errorf("%w: public area: %v", ErrKeyBlob, err)
	}
	if _, err := tpm2.Unmarshal[tpm2.TPM2BPrivate](blob.Private); err != nil {
		return nil, fmt.Errorf("%w: private area: %v", ErrKeyBlob, err)
	}
	if len(tpm2.Marshal(pub2b)) != len(blob.Public) {
		return nil, fmt.Errorf("%w: trailing bytes after the public area", ErrKeyBlob)
	}
	pub, err := pub2b.Contents()
	if err != nil {
		return nil, fmt.Errorf("%w: public area: %v", ErrKeyBlob, err)
	}
	a := pub.ObjectAttributes
	if pub.Type != tpm2.TPMAlgECC || pub.NameAlg != tpm2.TPMAlgSHA256 || !a.FixedTPM || !a.FixedParent ||
		!a.SensitiveDataOrigin || !a.SignEncrypt || a.Decrypt || a.Restricted {
		return nil, fmt.Errorf("%w: not a non-exportable ECC signing key made in the TPM", ErrKeyBlob)
	}
	params, err := pub.Parameters.ECCDetail()
	if err != nil || params.CurveID != tpm2.TPMECCNistP256 {
		return nil, fmt.Errorf("%w: not a P-256 key", ErrKeyBlob)
	}
	point, err := pub.Unique.ECC()
	if err != nil {
		return nil, fmt.Errorf("%w: public point: %v", ErrKeyBlob, err)
	}
	// The point's coordinates, left-padded to 32 bytes, make the
	// uncompressed encoding, which the parser checks is on the curve.
	raw := make([]byte, 65)
	raw[0] = 4
	for i, c := range [][]byte{point.X.Buffer, point.Y.Buffer} {
		if len(c) > 32 {
			return nil, fmt.Errorf("%w: public point coordinate of %d bytes", ErrKeyBlob, len(c))
		}
		copy(raw[1+32*i+32-len(c):1+32*(i+1)], c)
	}
	checked, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	if err != nil {
		return nil, fmt.Errorf("%w: public point: %v", ErrKeyBlob, err)
	}
	return checked, nil
}

// Key is a signing key held in a TPM: a crypto.Signer whose private part
// never leaves the TPM.
type Key struct {
	tpm  *TPM
	blob KeyBlob
	pub  *ecdsa.PublicKey
}

// Public returns the key's *ecdsa.PublicKey.
func (k *Key) Public() crypto.PublicKey { return k.pub }

// Blob returns what to store to load the key again.
func (k *Key) Blob() KeyBlob {
	return KeyBlob{Public: append([]byte(nil), k.blob.Public...), Private: append([]byte(nil), k.blob.Private...)}
}

// load makes the SRK and loads the key under it; the caller flushes both.
func (k *Key) load(conn transport.TPM) (tpm2.TPMHandle, tpm2.NamedHandle, error) {
	parent, err := srk(conn)
	if err != nil {
		return 0, tpm2.NamedHandle{}, err
	}
	pub, err := tpm2.Unmarshal[tpm2.TPM2BPublic](k.blob.Public)
	if err != nil {
		flush(conn, parent.Handle)
		return 0, tpm2.NamedHandle{}, fmt.Errorf("%w: %v", ErrKeyBlob, err)
	}
	priv, err := tpm2.Unmarshal[tpm2.TPM2BPrivate](k.blob.Private)
	if err != nil {
		flush(conn, parent.Handle)
		return 0, tpm2.NamedHandle{}, fmt.Errorf("%w: %v", ErrKeyBlob, err)
	}
	rsp, err := tpm2.Load{ParentHandle: parent, InPrivate: *priv, InPublic: *pub}.Execute(conn)
	if err != nil {
		flush(conn, parent.Handle)
		// The TPM checks the private area's integrity with a key derived
		// from its SRK: a blob from another TPM, or altered, fails here.
		return 0, tpm2.NamedHandle{}, fmt.Errorf("%w: %v", ErrWrongTPM, err)
	}
	return parent.Handle, tpm2.NamedHandle{Handle: rsp.ObjectHandle, Name: rsp.Name}, nil
}

// Sign has the TPM sign digest, a SHA-256, SHA-384 or SHA-512 hash as
// opts says, and returns an ASN.1 DER ECDSA signature. rand is unused: the
// TPM draws the nonce from its own generator.
func (k *Key) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return k.SignContext(context.Background(), digest, opts)
}

// SignContext is Sign with a context for the TPM's I/O.
func (k *Key) SignContext(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	var hashAlg tpm2.TPMIAlgHash
	switch opts.HashFunc() {
	case crypto.SHA256:
		hashAlg = tpm2.TPMAlgSHA256
	case crypto.SHA384:
		hashAlg = tpm2.TPMAlgSHA384
	case crypto.SHA512:
		hashAlg = tpm2.TPMAlgSHA512
	default:
		return nil, fmt.Errorf("tpm sign: hash %v not supported (want SHA-256, SHA-384 or SHA-512)", opts.HashFunc())
	}
	if len(digest) != opts.HashFunc().Size() {
		return nil, fmt.Errorf("tpm sign: digest of %d bytes for %v", len(digest), opts.HashFunc())
	}
	var sig []byte
	err := k.tpm.do(ctx, func(conn transport.TPM) error {
		parent, h, err := k.load(conn)
		if err != nil {
			return err
		}
		defer flush(conn, parent)
		defer flush(conn, h.Handle)
		rsp, err := tpm2.Sign{
			KeyHandle: h,
			Digest:    tpm2.TPM2BDigest{Buffer: digest},
			InScheme: tpm2.TPMTSigScheme{
				Scheme:  tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSchemeHash{HashAlg: hashAlg}),
			},
			Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull},
		}.Execute(conn)
		if err != nil {
			return fmt.Errorf("sign: %w", err)
		}
		ecc, err := rsp.Signature.Signature.ECDSA()
		if err != nil {
			return fmt.Errorf("sign: %w", err)
		}
		sig, err = asn1.Marshal(struct{ R, S *big.Int }{
			new(big.Int).SetBytes(ecc.SignatureR.Buffer), new(big.Int).SetBytes(ecc.SignatureS.Buffer),
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("tpm %s: %w", k.tpm.addr, err)
	}
	return sig, nil
}
