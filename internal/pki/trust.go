package pki

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Errors of the trust-bundle loader.
var (
	// ErrTrustBundle reports a trust bundle that is empty, holds a PEM
	// block other than a certificate, or a certificate that does not parse.
	ErrTrustBundle = errors.New("invalid trust bundle")
	// ErrNotTLSRoot reports a trust bundle whose every certificate holds a
	// key Go's TLS stack cannot verify: typically root.pem of an ML-DSA
	// CA, which anchors device certificates but not the platform's HTTPS
	// server certificate (decision 0004). TLS clients need FileTLSRoot.
	ErrNotTLSRoot = errors.New("trust bundle has no root TLS can use")
)

// TLSTrustFile is the file, relative to the platform's data directory,
// that TLS clients of the platform trust, whatever the CA's suite: for an
// ML-DSA CA it is the ECDSA TLS root, for an ECDSA or Ed25519 CA a copy of
// the root. The CA directory is "ca" under the data directory.
var TLSTrustFile = filepath.Join("ca", FileTLSRoot)

// maxTrustBundle bounds a trust bundle file: a bundle is a few roots, and
// an ML-DSA-87 certificate is under 10 KiB in PEM.
const maxTrustBundle = 1 << 20

// ParseTrustBundle parses PEM trust anchors for a TLS client. Every PEM
// block must be a CERTIFICATE that crypto/x509 parses; text between blocks
// is ignored, as OpenSSL does. Certificates whose key TLS cannot verify
// (ML-DSA) are left out of the pool; a bundle that holds only such
// certificates is ErrNotTLSRoot, naming the file TLS clients need, since
// trusting it would fail every handshake with "unknown authority".
func ParseTrustBundle(pemData []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	usable, unusable := 0, ""
	for n := 1; ; n++ {
		block, rest := pem.Decode(pemData)
		if block == nil {
			if len(bytes.TrimSpace(pemData)) > 0 && n == 1 {
				return nil, fmt.Errorf("%w: no PEM block", ErrTrustBundle)
			}
			break
		}
		pemData = rest
		if block.Type != pemCertificate {
			return nil, fmt.Errorf("%w: PEM block %d is a %q, want %q", ErrTrustBundle, n, block.Type, pemCertificate)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate %d: %w", ErrTrustBundle, n, err)
		}
		if cert.PublicKeyAlgorithm == x509.UnknownPublicKeyAlgorithm {
			unusable = describeKey(cert)
			continue
		}
		pool.AddCert(cert)
		usable++
	}
	switch {
	case usable > 0:
		return pool, nil
	case unusable != "":
		return nil, fmt.Errorf("%w: its certificates hold %s keys, which TLS cannot verify: "+
			"this is the device root of an ML-DSA CA; TLS clients of the platform need %s",
			ErrNotTLSRoot, unusable, TLSTrustFile)
	default:
		return nil, fmt.Errorf("%w: no certificate", ErrTrustBundle)
	}
}

// describeKey names the suite of a certificate key crypto/x509 does not
// know, for the error message.
func describeKey(cert *x509.Certificate) string {
	pub, err := sigalg.ParsePublicKey(cert.RawSubjectPublicKeyInfo)
	if err != nil {
		return "unknown-algorithm"
	}
	suite, err := sigalg.SuiteOf(pub)
	if err != nil {
		return "unknown-algorithm"
	}
	return string(suite.ID())
}

// LoadTrustBundle reads and parses the trust bundle in the file at path
// (ParseTrustBundle); errors name the file.
func LoadTrustBundle(path string) (*x509.CertPool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("trust bundle: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxTrustBundle+1))
	if err != nil {
		return nil, fmt.Errorf("trust bundle %s: %w", path, err)
	}
	if len(data) > maxTrustBundle {
		return nil, fmt.Errorf("trust bundle %s: %w: larger than %d bytes", path, ErrTrustBundle, maxTrustBundle)
	}
	pool, err := ParseTrustBundle(data)
	if err != nil {
		return nil, fmt.Errorf("trust bundle %s: %w", path, err)
	}
	return pool, nil
}

// ClientTLSConfig is the TLS configuration of every Hallmark client of
// the platform: TLS 1.3 only (the platform's listener accepts nothing
// older, and 1.3 brings the X25519MLKEM768 key exchange), servers verified
// against roots, and cert, if not nil, presented for mutual TLS.
func ClientTLSConfig(roots *x509.CertPool, cert *tls.Certificate) *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg
}
