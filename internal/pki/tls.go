package pki

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// tlsCapable reports whether TLS peers can verify signatures of suite in a
// certificate chain. Go 1.26's crypto/tls and crypto/x509 know ECDSA and
// Ed25519 but no ML-DSA (there is no ML-DSA SignatureScheme), nor does
// OpenSSL before 3.5, nor any browser yet.
func tlsCapable(suite sigalg.ID) bool {
	return suite == sigalg.ECDSAP256 || suite == sigalg.Ed25519
}

// maxServerNames bounds the names of one server certificate.
const maxServerNames = 32

// KeyTLSServer is the key manager's name of the platform's TLS server key
// (ECDSA P-256), beside the CA's keys: kept there, rather than made afresh
// on every start, so that it can live in an HSM and so that its
// SubjectPublicKeyInfo stays the same across restarts and replicas.
const KeyTLSServer = "tls-server"

// IssueServer is IssueServerFor with a fresh ECDSA P-256 key held only in
// memory: for servers whose key need not outlive the process, such as a
// test's or the demo's MQTT broker.
func (ca *CA) IssueServer(ctx context.Context, dnsNames []string, ips []net.IP, validity time.Duration) (tls.Certificate, error) {
	if err := ctx.Err(); err != nil {
		return tls.Certificate{}, fmt.Errorf("issue server certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue server certificate: %w", err)
	}
	return ca.IssueServerFor(ctx, key, dnsNames, ips, validity)
}

// IssueServerFor makes a TLS server certificate for key, an ECDSA P-256
// signer, which may be an opaque one from a key manager: crypto/tls signs
// its TLS 1.3 CertificateVerify through key.Sign with a SHA-256 digest
// (ecdsa_secp256r1_sha256), which is how every keys.Manager's ECDSA
// signer signs. The certificate has subject O=<CA name>, CN=<first
// name>, the DNS names and IP addresses as subject alternative names,
// keyUsage digitalSignature, extKeyUsage serverAuth, basicConstraints cA
// FALSE. For an ECDSA or Ed25519 CA the issuing CA signs it and the chain
// is leaf, issuing CA; for an ML-DSA CA the ECDSA TLS root signs it and
// the chain is the leaf alone, because no TLS client can verify an ML-DSA
// signature yet. Either way a client that trusts RootPEM verifies it with
// crypto/x509.
func (ca *CA) IssueServerFor(ctx context.Context, key crypto.Signer, dnsNames []string, ips []net.IP, validity time.Duration) (tls.Certificate, error) {
	if err := ctx.Err(); err != nil {
		return tls.Certificate{}, fmt.Errorf("issue server certificate: %w", err)
	}
	if ca.tlsSigner == nil {
		return tls.Certificate{}, fmt.Errorf("issue server certificate: %w: CA %s issues device certificates only", ErrInvalidRequest, ca.cfg.member)
	}
	// TLS 1.3 clients everywhere verify ecdsa_secp256r1_sha256; other key
	// types would narrow who can connect.
	if pub, ok := key.Public().(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		return tls.Certificate{}, fmt.Errorf("issue server certificate: %w: the TLS key is %T, want an ECDSA P-256 key", ErrInvalidRequest, key.Public())
	}
	t, err := ca.serverTemplate(dnsNames, ips, validity)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue server certificate: %w", err)
	}
	if t.spki, err = sigalg.MarshalPublicKey(key.Public()); err != nil {
		return tls.Certificate{}, fmt.Errorf("issue server certificate: %w", err)
	}
	der, err := sign(t, ca.tlsSigner)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue server certificate: %w", err)
	}
	chain := [][]byte{der}
	if ca.tlsIssuer == ca.issuing {
		chain = append(chain, clone(ca.issuing.Raw))
	}
	return tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, nil
}

func (ca *CA) serverTemplate(dnsNames []string, ips []net.IP, validity time.Duration) (*template, error) {
	if len(dnsNames)+len(ips) == 0 || len(dnsNames)+len(ips) > maxServerNames {
		return nil, fmt.Errorf("%w: %d names, want 1 to %d DNS names and IP addresses", ErrInvalidRequest, len(dnsNames)+len(ips), maxServerNames)
	}
	for _, name := range dnsNames {
		if err := checkDNSName(name); err != nil {
			return nil, err
		}
	}
	for _, ip := range ips {
		if ip.To4() == nil && len(ip) != net.IPv6len {
			return nil, fmt.Errorf("%w: IP address of %d bytes", ErrInvalidRequest, len(ip))
		}
	}
	cn := ""
	if len(dnsNames) > 0 {
		cn = dnsNames[0]
	} else {
		cn = ips[0].String()
	}
	subject, err := encodeName(pkix.Name{Organization: []string{ca.cfg.Name}, CommonName: cn})
	if err != nil {
		return nil, err
	}
	t := &template{issuer: ca.tlsIssuer.RawSubject, subject: subject,
		keyUsage:       []int{kuDigitalSignature},
		extKeyUsage:    []asn1.ObjectIdentifier{oidServerAuth},
		authorityKeyID: ca.tlsIssuer.SubjectKeyId,
		dnsNames:       dnsNames, ips: ips,
	}
	if t.notBefore, t.notAfter, err = validityWindow(ca.cfg.Now(), validity, ca.tlsIssuer); err != nil {
		return nil, err
	}
	if t.serial, err = newSerial(ca.random); err != nil {
		return nil, err
	}
	return t, nil
}

// checkDNSName accepts a lower-case host name of letters, digits and
// hyphens in dot-separated labels of 1 to 63 characters, 253 at most; no
// wildcards.
func checkDNSName(name string) error {
	bad := func(why string) error { return fmt.Errorf("%w: DNS name %q: %s", ErrInvalidRequest, name, why) }
	if name == "" || len(name) > 253 {
		return bad("length")
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return bad("empty, long or hyphen-edged label")
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return bad("want lower-case letters, digits and hyphens")
			}
		}
	}
	return nil
}

// VerifyDevice verifies a device certificate chain as presented in mutual
// TLS (leaf first; what follows is ignored, the CA knows its own chain)
// against this CA for clientAuth at now, and returns the leaf and the
// identity it carries. A chain verified before is answered from memory
// while every certificate of its path is still valid (devicecache.go); the
// returned certificate may then be shared with earlier callers and must not
// be modified. Use it from tls.Config.VerifyPeerCertificate with
// ClientAuth tls.RequireAnyClientCert, since crypto/tls cannot verify an
// ML-DSA CA's signatures itself.
func (ca *CA) VerifyDevice(chain [][]byte, now time.Time) (*x509.Certificate, identity.ID, error) {
	if len(chain) == 0 {
		return nil, identity.ID{}, fmt.Errorf("verify device: %w: no certificate", ErrUntrusted)
	}
	return ca.verifyDevice(sha256.Sum256(chain[0]), chain, now)
}

// verifyDevice is VerifyDevice with the leaf's SHA-256, key, computed.
func (ca *CA) verifyDevice(key [sha256.Size]byte, chain [][]byte, now time.Time) (*x509.Certificate, identity.ID, error) {
	if v, ok := ca.verified.get(key, now); ok {
		return v.leaf, v.id, nil
	}
	v := verifier{now: now, usage: x509.ExtKeyUsageClientAuth,
		intermediates: []*parsedCert{ca.issuing}, roots: []*parsedCert{ca.root}}
	leaf, err := v.verify(chain[0])
	if err != nil {
		return nil, identity.ID{}, fmt.Errorf("verify device: %w", err)
	}
	id, err := DeviceIdentity(leaf)
	if err != nil {
		return nil, identity.ID{}, fmt.Errorf("verify device: %w", err)
	}
	notBefore, notAfter := validWindow(leaf, ca.issuing.Certificate, ca.root.Certificate)
	ca.verified.put(key, verifiedLeaf{leaf: leaf, id: id, notBefore: notBefore, notAfter: notAfter})
	return leaf, id, nil
}

// DeviceIdentity returns the identity a device certificate carries: its
// only URI subject alternative name, urn:hallmark:device:<hex>, which must
// agree with the subject common name. It does not verify the certificate.
func DeviceIdentity(cert *x509.Certificate) (identity.ID, error) {
	if len(cert.URIs) != 1 {
		return identity.ID{}, fmt.Errorf("%w: %d URI names, want 1", ErrMalformedCertificate, len(cert.URIs))
	}
	uri := cert.URIs[0].String()
	hex, ok := strings.CutPrefix(uri, DeviceURIPrefix)
	if !ok {
		return identity.ID{}, fmt.Errorf("%w: URI name %q is not a device identity", ErrMalformedCertificate, uri)
	}
	id, err := identity.Parse(hex)
	if err != nil {
		return identity.ID{}, fmt.Errorf("%w: %w", ErrMalformedCertificate, err)
	}
	if cert.Subject.CommonName != hex {
		return identity.ID{}, fmt.Errorf("%w: subject common name disagrees with the URI name", ErrMalformedCertificate)
	}
	return id, nil
}
