//go:build cgo

package pkcs11kms

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/asn1"

	"fmt"
	"io"
	"math/big"

	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/miekg/pkcs11"
)

// DER of the curves' object identifiers, the CKA_EC_PARAMS of their keys.
var (
	ecParamsP256    = []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07} // prime256v1
	ecParamsEd25519 = []byte{0x06, 0x03, 0x2b, 0x65, 0x70}                               // id-Ed25519
	// PKCS #11 3.0 also allows the curve's name as a PrintableString.
	ecParamsEd25519Name = append([]byte{0x13, 0x0c}, "edwards25519"...)
)

var mldsaParamSets = map[sigalg.ID]uint{
	sigalg.MLDSA44: ckpMLDSA44, sigalg.MLDSA65: ckpMLDSA65, sigalg.MLDSA87: ckpMLDSA87,
}

// tokenKey is a key pair found in the token. Object handles stay valid for
// all of the application's sessions, so they are looked up once.
type tokenKey struct {
	name      string
	suite     sigalg.Suite
	priv, pub pkcs11.ObjectHandle
	public    crypto.PublicKey
}

// CreateKey generates a key pair in the token: a private key that is a
// token object, private, sensitive and not extractable, labelled with the
// name, and its public key. Of two creators of one name in this process,
// exactly one succeeds; the token itself does not make labels unique, so
// two processes creating one name at once could both succeed
// (docs/keystore.md).
func (m *Manager) CreateKey(ctx context.Context, req keys.CreateKeyRequest) (crypto.PublicKey, error) {
	if err := keys.ValidateName(req.Name); err != nil {
		return nil, fmt.Errorf("create key: %w", err)
	}
	suite, err := req.Suite.Suite()
	if err != nil {
		return nil, fmt.Errorf("create key %s: %w", req.Name, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("create key %s: %w", req.Name, err)
	}
	sm, err := m.suiteMechanisms(suite.ID())
	if err != nil {
		return nil, fmt.Errorf("create key %s: %w", req.Name, err)
	}
	var k *tokenKey
	err = m.use(ctx, func(sh pkcs11.SessionHandle) error {
		m.slot.createMu.Lock()
		defer m.slot.createMu.Unlock()
		if err := ctx.Err(); err != nil {
			return err
		}
		for _, class := range []uint{pkcs11.CKO_PRIVATE_KEY, pkcs11.CKO_PUBLIC_KEY} {
			found, err := m.findObjects(sh, class, req.Name)
			if err != nil {
				return err
			}
			if len(found) > 0 {
				return keys.ErrExists
			}
		}
		pubT, privT := keyTemplates(suite.ID(), req.Name, true)
		pub, priv, err := m.mod.ctx.GenerateKeyPair(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(sm.gen, nil)}, pubT, privT)
		if err != nil {
			return fmt.Errorf("C_GenerateKeyPair (%s): %w", sm.genName, err)
		}
		s, public, err := m.readPublic(sh, pub)
		if err == nil && s.ID() != suite.ID() {
			err = fmt.Errorf("the token made a %s key for a %s request", s.ID(), suite.ID())
		}
		if err != nil {
			m.mod.ctx.DestroyObject(sh, priv)
			m.mod.ctx.DestroyObject(sh, pub)
			return err
		}
		k = &tokenKey{name: req.Name, suite: suite, priv: priv, pub: pub, public: public}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create %s key %s in token %q: %w", suite.ID(), req.Name, m.label, err)
	}
	m.cacheMu.Lock()
	m.cache[req.Name] = k
	m.cacheMu.Unlock()
	return k.public, nil
}

// keyTemplates returns the public- and private-key templates of a key
// pair. Manager keys are token objects; device keys are session objects,
// extractable only so that C_WrapKey can wrap them.
func keyTemplates(id sigalg.ID, label string, token bool) (pub, priv []*pkcs11.Attribute) {
	common := func(class uint) []*pkcs11.Attribute {
		a := []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, token),
		}
		if label != "" {
			a = append(a, pkcs11.NewAttribute(pkcs11.CKA_LABEL, label), pkcs11.NewAttribute(pkcs11.CKA_ID, keyID(label)))
		}
		return a
	}
	pub = append(common(pkcs11.CKO_PUBLIC_KEY), pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true))
	priv = append(common(pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, !token),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
	)
	switch id {
	case sigalg.ECDSAP256:
		pub = append(pub, pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC), pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, ecParamsP256))
		priv = append(priv, pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC))
	case sigalg.Ed25519:
		pub = append(pub, pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, ckkECEdwards), pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, ecParamsEd25519))
		priv = append(priv, pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, ckkECEdwards))
	default: // ML-DSA, PKCS #11 3.2
		pub = append(pub, pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, ckkMLDSA), pkcs11.NewAttribute(ckaParameterSet, mldsaParamSets[id]))
		priv = append(priv, pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, ckkMLDSA))
	}
	return pub, priv
}

// findObjects returns the token objects of a class with a label.
func (m *Manager) findObjects(sh pkcs11.SessionHandle, class uint, label string) ([]pkcs11.ObjectHandle, error) {
	t := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}
	if err := m.mod.ctx.FindObjectsInit(sh, t); err != nil {
		return nil, fmt.Errorf("C_FindObjectsInit: %w", err)
	}
	found, _, err := m.mod.ctx.FindObjects(sh, 2)
	if ferr := m.mod.ctx.FindObjectsFinal(sh); err == nil && ferr != nil {
		err = ferr
	}
	if err != nil {
		return nil, fmt.Errorf("C_FindObjects: %w", err)
	}
	return found, nil
}

// readPublic reads a public-key object and returns its suite and key,
// checked by sigalg as every public key Hallmark takes in is.
func (m *Manager) readPublic(sh pkcs11.SessionHandle, h pkcs11.ObjectHandle) (sigalg.Suite, crypto.PublicKey, error) {
	attrs, err := m.mod.ctx.GetAttributeValue(sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil)})
	if err != nil {
		return nil, nil, fmt.Errorf("read public key type: %w", err)
	}
	kt, err := attrUint(attrs[0].Value)
	if err != nil {
		return nil, nil, err
	}
	var pub crypto.PublicKey
	switch kt {
	case pkcs11.CKK_EC, ckkECEdwards:
		attrs, err := m.mod.ctx.GetAttributeValue(sh, h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, nil), pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil)})
		if err != nil {
			return nil, nil, fmt.Errorf("read public key: %w", err)
		}
		pub, err = ecPublicKey(kt, attrs[0].Value, attrs[1].Value)
		if err != nil {
			return nil, nil, err
		}
	case ckkMLDSA:
		attrs, err := m.mod.ctx.GetAttributeValue(sh, h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(ckaParameterSet, nil), pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
		if err != nil {
			return nil, nil, fmt.Errorf("read public key: %w", err)
		}
		pub, err = mldsaPublicKey(attrs[0].Value, attrs[1].Value)
		if err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, fmt.Errorf("%w: key type %#x", keys.ErrUnsupported, kt)
	}
	der, err := sigalg.MarshalPublicKey(pub)
	if err != nil {
		return nil, nil, err
	}
	pub, suite, err := sigalg.ParsePublicKeyWithSuite(der)
	if err != nil {
		return nil, nil, fmt.Errorf("public key from the token: %w", err)
	}
	return suite, pub, nil
}

// ecPublicKey decodes CKA_EC_POINT, which PKCS #11 defines as a DER OCTET
// STRING holding the point; some tokens return the bare point, so both are
// taken.
func ecPublicKey(keyType uint, params, point []byte) (crypto.PublicKey, error) {
	raw := point
	var inner []byte
	if rest, err := asn1.Unmarshal(point, &inner); err == nil && len(rest) == 0 {
		raw = inner
	}
	switch {
	case keyType == pkcs11.CKK_EC && bytes.Equal(params, ecParamsP256):
		if len(point) == 65 && point[0] == 4 {
			raw = point // a bare uncompressed point, not DER
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
		if err != nil {
			return nil, fmt.Errorf("%w: the token's P-256 point: %v", sigalg.ErrMalformedKey, err)
		}
		return pub, nil
	case keyType == ckkECEdwards && (bytes.Equal(params, ecParamsEd25519) || bytes.Equal(params, ecParamsEd25519Name)):
		if len(point) == ed25519.PublicKeySize {
			raw = point
		}
		if len(raw) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: the token's Ed25519 point is %d bytes", sigalg.ErrMalformedKey, len(raw))
		}
		return ed25519.PublicKey(bytes.Clone(raw)), nil
	}
	return nil, fmt.Errorf("%w: elliptic-curve key with parameters %x (Hallmark uses P-256 and Ed25519)", keys.ErrUnsupported, params)
}

// mldsaPublicKey makes a SubjectPublicKeyInfo of a PKCS #11 3.2 ML-DSA
// public key (CKA_VALUE is the FIPS 204 encoding) for sigalg to parse.
func mldsaPublicKey(paramSet, value []byte) (crypto.PublicKey, error) {
	ps, err := attrUint(paramSet)
	if err != nil {
		return nil, err
	}
	for id, set := range mldsaParamSets {
		if set != ps {
			continue
		}
		suite, err := id.Suite()
		if err != nil {
			return nil, err
		}
		type algID struct{ Algorithm asn1.ObjectIdentifier }
		der, err := asn1.Marshal(struct {
			Alg algID
			Key asn1.BitString
		}{algID{suite.OID()}, asn1.BitString{Bytes: value, BitLength: 8 * len(value)}})
		if err != nil {
			return nil, err
		}
		return sigalg.ParsePublicKey(der)
	}
	return nil, fmt.Errorf("%w: ML-DSA parameter set %d", keys.ErrUnsupported, ps)
}

// attrUint decodes a CK_ULONG attribute (native byte order, LP64 on the
// platforms Hallmark builds for).
func attrUint(v []byte) (uint, error) {
	if len(v) != 8 && len(v) != 4 {
		return 0, fmt.Errorf("CK_ULONG attribute of %d bytes", len(v))
	}
	var n uint
	for i := len(v) - 1; i >= 0; i-- {
		n = n<<8 | uint(v[i])
	}
	return n, nil
}

// PublicKey returns the public key of the named key pair.
func (m *Manager) PublicKey(ctx context.Context, name string) (crypto.PublicKey, error) {
	k, err := m.key(ctx, name)
	if err != nil {
		return nil, err
	}
	return k.public, nil
}

// Signer returns a signer whose private key stays in the token.
func (m *Manager) Signer(ctx context.Context, name string) (crypto.Signer, error) {
	k, err := m.key(ctx, name)
	if err != nil {
		return nil, err
	}
	return &signer{m: m, k: k}, nil
}

func (m *Manager) key(ctx context.Context, name string) (*tokenKey, error) {
	if err := keys.ValidateName(name); err != nil {
		return nil, err
	}
	m.mu.RLock()
	closed := m.closed
	m.mu.RUnlock()
	if closed {
		return nil, fmt.Errorf("key %s: %w", name, keys.ErrClosed)
	}
	m.cacheMu.Lock()
	k := m.cache[name]
	m.cacheMu.Unlock()
	if k != nil {
		return k, nil
	}
	err := m.use(ctx, func(sh pkcs11.SessionHandle) error {
		privs, err := m.findObjects(sh, pkcs11.CKO_PRIVATE_KEY, name)
		if err != nil {
			return err
		}
		pubs, err := m.findObjects(sh, pkcs11.CKO_PUBLIC_KEY, name)
		if err != nil {
			return err
		}
		switch {
		case len(privs) == 0:
			return keys.ErrNotFound
		case len(privs) > 1 || len(pubs) > 1:
			return fmt.Errorf("%w: several key objects are labelled %q; remove the extra ones with the token's tools", keys.ErrCorrupt, name)
		case len(pubs) == 0:
			return fmt.Errorf("%w: private key %q has no public-key object beside it", keys.ErrCorrupt, name)
		}
		suite, public, err := m.readPublic(sh, pubs[0])
		if err != nil {
			return err
		}
		k = &tokenKey{name: name, suite: suite, priv: privs[0], pub: pubs[0], public: public}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("key %s in token %q: %w", name, m.label, err)
	}
	m.cacheMu.Lock()
	m.cache[name] = k
	m.cacheMu.Unlock()
	return k, nil
}

// signer is a crypto.Signer over a token key.
type signer struct {
	m *Manager
	k *tokenKey
}

func (s *signer) Public() crypto.PublicKey { return s.k.public }

// Sign follows the crypto.Signer conventions sigalg.Sign relies on: an
// ECDSA key signs a digest of the hash opts names and returns ASN.1 DER (the
// token returns r||s); Ed25519 and ML-DSA keys sign the whole message and
// require opts.HashFunc() == 0.
func (s *signer) Sign(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	var mech uint
	switch s.k.suite.ID() {
	case sigalg.ECDSAP256:
		if opts == nil || opts.HashFunc() == 0 {
			return nil, fmt.Errorf("sign with %s: ECDSA signs a digest; opts must name its hash", s.k.name)
		}
		if len(msg) != opts.HashFunc().Size() {
			return nil, fmt.Errorf("sign with %s: digest of %d bytes for %v", s.k.name, len(msg), opts.HashFunc())
		}
		mech = pkcs11.CKM_ECDSA
	case sigalg.Ed25519:
		if o, ok := opts.(*ed25519.Options); ok && o.Context != "" {
			return nil, fmt.Errorf("sign with %s: %w: Ed25519 with a context", s.k.name, keys.ErrUnsupported)
		}
		mech = ckmEdDSA
	default:
		mech = ckmMLDSA
	}
	if mech != pkcs11.CKM_ECDSA && opts != nil && opts.HashFunc() != 0 {
		return nil, fmt.Errorf("sign with %s: %w: pre-hashed messages (%v)", s.k.name, keys.ErrUnsupported, opts.HashFunc())
	}
	var sig []byte
	err := s.m.use(context.Background(), func(sh pkcs11.SessionHandle) error {
		if err := s.m.mod.ctx.SignInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, s.k.priv); err != nil {
			return fmt.Errorf("C_SignInit: %w", err)
		}
		var err error
		sig, err = s.m.mod.ctx.Sign(sh, msg)
		if err != nil {
			return fmt.Errorf("C_Sign: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sign with %s: %w", s.k.name, err)
	}
	if mech == pkcs11.CKM_ECDSA {
		return ecdsaDER(sig)
	}
	return sig, nil
}

// ecdsaDER converts PKCS #11's r||s to the ASN.1 DER Ecdsa-Sig-Value that
// crypto.Signer and X.509 use.
func ecdsaDER(raw []byte) ([]byte, error) {
	if len(raw) != 64 {
		return nil, fmt.Errorf("ECDSA signature of %d bytes from the token, want 64", len(raw))
	}
	return asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])})
}
