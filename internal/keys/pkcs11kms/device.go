//go:build cgo

package pkcs11kms

/*
#include <stdlib.h>
#include <string.h>

// The layout of CK_KEY_DERIVATION_STRING_DATA (PKCS #11 2.40, 2.43.9): a
// byte pointer and a CK_ULONG, which is unsigned long on the Unix ABIs.
typedef struct {
	unsigned char *pData;
	unsigned long ulLen;
} hallmark_string_data;
*/
import "C"

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/asn1"
	"errors"
	"fmt"
	"unsafe"

	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/miekg/pkcs11"
)

// GenerateDeviceKey makes a device key pair for the inject root of trust
// inside the token, as session objects that are destroyed before it
// returns, whatever happens.
//
// With a keys.ECDHTransport, the token wraps the private key to the chip's
// transport key itself (ECDH, AES-ECB key derivation, AES key wrap with
// padding): the plaintext never reaches this process. With a nil wrap the
// key is read out in the clear, the weak path the caller records. Any
// other keys.Wrapper is refused: the token cannot compute it, so the key
// would have to come out in the clear to be wrapped on the host.
func (m *Manager) GenerateDeviceKey(ctx context.Context, suiteID sigalg.ID, wrap keys.Wrapper) (crypto.PublicKey, []byte, error) {
	suite, err := suiteID.Suite()
	if err != nil {
		return nil, nil, fmt.Errorf("generate device key: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("generate %s device key: %w", suite.ID(), err)
	}
	var transport *ecdh.PublicKey
	if wrap != nil {
		et, ok := wrap.(keys.ECDHTransport)
		if !ok {
			return nil, nil, fmt.Errorf("generate %s device key: %w: token %q cannot wrap to this chip's transport key (%T): "+
				"a PKCS #11 token computes no KEM such as HPKE or X-Wing, so the device key would have to leave the token "+
				"in the clear; use a chip with a P-256 ECDH transport key, or keep station keys in the soft: store",
				suite.ID(), keys.ErrUnsupported, m.label, wrap)
		}
		transport = et.ECDHTransportKey()
		if transport == nil || transport.Curve() != ecdh.P256() {
			return nil, nil, fmt.Errorf("generate %s device key: %w: the chip's ECDH transport key is not a P-256 key",
				suite.ID(), keys.ErrUnsupported)
		}
	}
	sm, err := m.suiteMechanisms(suite.ID())
	if err != nil {
		return nil, nil, fmt.Errorf("generate device key: %w", err)
	}
	if transport != nil {
		for _, need := range []struct {
			mech uint
			name string
		}{
			{pkcs11.CKM_EC_KEY_PAIR_GEN, "CKM_EC_KEY_PAIR_GEN"},
			{pkcs11.CKM_ECDH1_DERIVE, "CKM_ECDH1_DERIVE"},
			{pkcs11.CKM_AES_ECB_ENCRYPT_DATA, "CKM_AES_ECB_ENCRYPT_DATA"},
		} {
			if !m.mechs[need.mech] {
				return nil, nil, fmt.Errorf("generate %s device key: %w: wrapping to the chip needs mechanism %s, which token %q does not offer",
					suite.ID(), keys.ErrUnsupported, need.name, m.label)
			}
		}
		if m.wrapMech() == 0 {
			return nil, nil, fmt.Errorf("generate %s device key: %w: wrapping to the chip needs AES key wrap with padding (RFC 5649: "+
				"CKM_AES_KEY_WRAP_KWP, or CKM_AES_KEY_WRAP_PAD in SoftHSM2), which token %q does not offer",
				suite.ID(), keys.ErrUnsupported, m.label)
		}
	}
	var (
		pub      crypto.PublicKey
		exported []byte
	)
	err = m.use(ctx, func(sh pkcs11.SessionHandle) error {
		d := &deviceJob{m: m, sh: sh}
		defer d.destroy()
		pubT, privT := keyTemplates(suite.ID(), "", false)
		if transport == nil {
			// The weak path: the key is readable, because it is about
			// to be handed out in the clear anyway.
			privT = setAttr(privT, pkcs11.CKA_SENSITIVE, false)
		}
		pubH, privH, err := d.generate(sm.gen, pubT, privT)
		if err != nil {
			return fmt.Errorf("C_GenerateKeyPair (%s): %w", sm.genName, err)
		}
		_, pub, err = m.readPublic(sh, pubH)
		if err != nil {
			return err
		}
		if transport == nil {
			exported, err = d.readClear(suite.ID(), privH, pub)
		} else {
			exported, err = d.wrapECDH(transport, privH)
		}
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("generate %s device key in token %q: %w", suite.ID(), m.label, err)
	}
	return pub, exported, nil
}

func setAttr(t []*pkcs11.Attribute, typ uint, v any) []*pkcs11.Attribute {
	out := make([]*pkcs11.Attribute, 0, len(t))
	for _, a := range t {
		if a.Type != typ {
			out = append(out, a)
		}
	}
	return append(out, pkcs11.NewAttribute(typ, v))
}

// deviceJob tracks the session objects of one GenerateDeviceKey so that
// every one is destroyed, on success and on every error.
type deviceJob struct {
	m       *Manager
	sh      pkcs11.SessionHandle
	objects []pkcs11.ObjectHandle
}

func (d *deviceJob) destroy() {
	for _, h := range d.objects {
		// Nothing to do about a failure but let the session's end take
		// the object: session objects die with the session at the latest.
		d.m.mod.ctx.DestroyObject(d.sh, h)
	}
}

func (d *deviceJob) generate(mech uint, pubT, privT []*pkcs11.Attribute) (pub, priv pkcs11.ObjectHandle, err error) {
	pub, priv, err = d.m.mod.ctx.GenerateKeyPair(d.sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, pubT, privT)
	if err == nil {
		d.objects = append(d.objects, pub, priv)
	}
	return pub, priv, err
}

func (d *deviceJob) derive(mech *pkcs11.Mechanism, base pkcs11.ObjectHandle, t []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	h, err := d.m.mod.ctx.DeriveKey(d.sh, []*pkcs11.Mechanism{mech}, base, t)
	if err == nil {
		d.objects = append(d.objects, h)
	}
	return h, err
}

// readClear reads a non-sensitive device private key and encodes it as
// PKCS #8.
func (d *deviceJob) readClear(id sigalg.ID, priv pkcs11.ObjectHandle, pub crypto.PublicKey) ([]byte, error) {
	attrs, err := d.m.mod.ctx.GetAttributeValue(d.sh, priv, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
	if err != nil {
		return nil, fmt.Errorf("read device private key: %w", err)
	}
	value := attrs[0].Value
	defer clear(value)
	var key crypto.Signer
	switch id {
	case sigalg.ECDSAP256:
		k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), leftPad(value, 32))
		if err != nil {
			return nil, fmt.Errorf("device private key from the token: %w", err)
		}
		key = k
	case sigalg.Ed25519:
		seed := value
		var inner []byte
		if rest, err := asn1.Unmarshal(value, &inner); err == nil && len(rest) == 0 && len(value) != ed25519.SeedSize {
			seed = inner // some tokens wrap the seed in an OCTET STRING
		}
		if len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("device private key from the token: Ed25519 value of %d bytes", len(seed))
		}
		key = ed25519.NewKeyFromSeed(seed)
	default:
		return nil, fmt.Errorf("%w: reading %s private keys", keys.ErrUnsupported, id)
	}
	der, err := sigalg.MarshalPrivateKey(key)
	if err != nil {
		return nil, err
	}
	want, _ := sigalg.MarshalPublicKey(pub)
	got, err := sigalg.MarshalPublicKey(key.Public())
	if err != nil || !bytes.Equal(want, got) {
		clear(der)
		return nil, errors.New("the token's device private key does not match its public key")
	}
	return der, nil
}

func leftPad(b []byte, n int) []byte {
	if len(b) >= n {
		return b
	}
	return append(make([]byte, n-len(b)), b...)
}

// wrapECDH wraps the device private key to the chip's transport key T in
// the token, in the format of sealing.WrapECDH: blob = 0x01 || E || W with
// E a fresh ephemeral P-256 key made in the token, Z the x-coordinate of
// ECDH(E, T) (CKM_ECDH1_DERIVE), K = AES-256-ECB_Z(D) with
// D = sealing.ECDHWrapContext(T, E) (CKM_AES_ECB_ENCRYPT_DATA), and W the
// device key's PKCS #8 wrapped under K with RFC 5649 (C_WrapKey). Z and K
// are sensitive, unextractable session keys; only E and W leave the token.
func (d *deviceJob) wrapECDH(t *ecdh.PublicKey, device pkcs11.ObjectHandle) ([]byte, error) {
	ctx := d.m.mod.ctx
	tBytes := t.Bytes()
	// E: an ephemeral P-256 key pair whose private half may only derive.
	pubT := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, ecParamsP256),
	}
	privT := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, false),
	}
	ePubH, ePrivH, err := d.generate(pkcs11.CKM_EC_KEY_PAIR_GEN, pubT, privT)
	if err != nil {
		return nil, fmt.Errorf("ephemeral key: C_GenerateKeyPair: %w", err)
	}
	attrs, err := ctx.GetAttributeValue(d.sh, ePubH, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil)})
	if err != nil {
		return nil, fmt.Errorf("ephemeral key: %w", err)
	}
	ePub, err := ecPublicKey(pkcs11.CKK_EC, ecParamsP256, attrs[0].Value)
	if err != nil {
		return nil, fmt.Errorf("ephemeral key: %w", err)
	}
	eBytes, err := ePub.(*ecdsa.PublicKey).Bytes()
	if err != nil {
		return nil, fmt.Errorf("ephemeral key: %w", err)
	}

	// Z may only derive K, and K only wrap: neither can encrypt, decrypt
	// or unwrap, so neither can be used to open W inside the token.
	secret := func(derive, wrap bool) []*pkcs11.Attribute {
		return []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
			pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
			pkcs11.NewAttribute(pkcs11.CKA_DERIVE, derive),
			pkcs11.NewAttribute(pkcs11.CKA_WRAP, wrap),
		}
	}
	// Z: the ECDH shared secret's x-coordinate, as an AES key that can
	// only derive.
	zH, err := d.derive(pkcs11.NewMechanism(pkcs11.CKM_ECDH1_DERIVE, pkcs11.NewECDH1DeriveParams(pkcs11.CKD_NULL, nil, tBytes)),
		ePrivH, secret(true, false))
	if err != nil {
		return nil, fmt.Errorf("ECDH with the chip's transport key: C_DeriveKey (CKM_ECDH1_DERIVE): %w", err)
	}
	// K = AES-256-ECB_Z(D), D binding the key to both public keys.
	kH, err := d.deriveECBEncrypt(zH, sealing.ECDHWrapContext(tBytes, eBytes), secret(false, true))
	if err != nil {
		return nil, fmt.Errorf("derive the wrapping key: C_DeriveKey (CKM_AES_ECB_ENCRYPT_DATA): %w", err)
	}
	w, err := ctx.WrapKey(d.sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(d.m.wrapMech(), nil)}, kH, device)
	if isRV(err, pkcs11.CKR_KEY_NOT_WRAPPABLE) {
		return nil, fmt.Errorf("%w: the token cannot wrap a key of this type (%v; SoftHSM2 2.6 wraps RSA, DSA, DH and EC "+
			"private keys, not Ed25519): use ecdsa-p256 device keys with this token, or the soft: store", keys.ErrUnsupported, err)
	}
	if err != nil {
		return nil, fmt.Errorf("wrap the device key: C_WrapKey (CKM_AES_KEY_WRAP_PAD): %w", err)
	}
	blob := make([]byte, 0, 1+len(eBytes)+len(w))
	blob = append(blob, sealing.ECDHWrapVersion)
	blob = append(blob, eBytes...)
	return append(blob, w...), nil
}

// ckmAESKeyWrapKWP is RFC 5649 in PKCS #11 3.0. In 3.0 the older
// CKM_AES_KEY_WRAP_PAD means PKCS #7 padding and RFC 3394; SoftHSM2 2.6
// implements RFC 5649 under CKM_AES_KEY_WRAP_PAD and lists no KWP. So KWP
// is used where the token lists it and PAD otherwise; a token whose PAD is
// the 3.0 kind makes blobs the chip refuses (its integrity check fails), it
// cannot make one that unwraps to something else.
const ckmAESKeyWrapKWP = 0x210b

func (m *Manager) wrapMech() uint {
	switch {
	case m.mechs[ckmAESKeyWrapKWP]:
		return ckmAESKeyWrapKWP
	case m.mechs[pkcs11.CKM_AES_KEY_WRAP_PAD]:
		return pkcs11.CKM_AES_KEY_WRAP_PAD
	}
	return 0
}

// deriveECBEncrypt runs CKM_AES_ECB_ENCRYPT_DATA, whose parameter is a
// CK_KEY_DERIVATION_STRING_DATA: a struct holding a pointer to the data.
// miekg/pkcs11 has no type for it and copies a []byte parameter into C
// memory as it is, so the data goes into C memory here (a Go pointer may
// not be stored in memory C keeps) and the parameter is the struct's bytes
// as C lays them out; the data is freed, after wiping, once the call
// returns.
func (d *deviceJob) deriveECBEncrypt(base pkcs11.ObjectHandle, data []byte, t []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	p := C.malloc(C.size_t(len(data)))
	if p == nil {
		return 0, errors.New("out of memory")
	}
	defer C.free(p)
	defer C.memset(p, 0, C.size_t(len(data)))
	C.memcpy(p, unsafe.Pointer(&data[0]), C.size_t(len(data)))
	param := C.hallmark_string_data{pData: (*C.uchar)(p), ulLen: C.ulong(len(data))}
	raw := C.GoBytes(unsafe.Pointer(&param), C.int(unsafe.Sizeof(param)))
	return d.derive(pkcs11.NewMechanism(pkcs11.CKM_AES_ECB_ENCRYPT_DATA, raw), base, t)
}
