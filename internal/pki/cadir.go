package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hallmark-iot/hallmark/internal/atomicfile"
	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

const pemCertificate = "CERTIFICATE"

// create makes the CA's keys and certificates and writes them to dir,
// root.pem last. Keys that already exist are reused: they are left behind
// by a first start that failed before root.pem was written, and a new root
// certificate over the same key and name is as good as the lost one.
func create(ctx context.Context, km keys.Manager, dir string, cfg Config) error {
	suite := cfg.Suite
	if suite == "" {
		suite = sigalg.ECDSAP256
		if pub, err := km.PublicKey(ctx, cfg.keyName(KeyRoot)); err == nil {
			if s, err := sigalg.SuiteOf(pub); err == nil {
				suite = s.ID() // an interrupted first start chose it
			}
		}
	}
	rootKey, err := ensureKey(ctx, km, cfg.keyName(KeyRoot), suite)
	if err != nil {
		return err
	}
	issuingKey, err := ensureKey(ctx, km, cfg.keyName(KeyIssuing), suite)
	if err != nil {
		return err
	}
	now := cfg.Now()
	rootDER, err := selfSignedCA(rand.Reader, rootKey, cfg.Name, cfg.role("Root CA"), 1, now, cfg.RootValidity)
	if err != nil {
		return fmt.Errorf("root certificate: %w", err)
	}
	root, err := parseCert(rootDER)
	if err != nil {
		return fmt.Errorf("root certificate: %w", err)
	}
	issuingDER, err := issuingCA(rand.Reader, root, rootKey, issuingKey.Public(), cfg.Name, cfg.role("Issuing CA"), now, cfg.IssuingValidity)
	if err != nil {
		return fmt.Errorf("issuing CA certificate: %w", err)
	}
	// TLS clients trust tls-root.pem whatever the suite: the root itself
	// when TLS can verify it, else a separate ECDSA root (decision 0004).
	files := map[string][]byte{FileIssuing: issuingDER, FileTLSRoot: rootDER}
	if cfg.member != "" {
		// A further CA of a set serves no TLS: the first CA does.
		delete(files, FileTLSRoot)
	} else if !tlsCapable(suite) {
		tlsKey, err := ensureKey(ctx, km, KeyTLSRoot, sigalg.ECDSAP256)
		if err != nil {
			return err
		}
		if files[FileTLSRoot], err = selfSignedCA(rand.Reader, tlsKey, cfg.Name, "TLS Root CA", 0, now, cfg.RootValidity); err != nil {
			return fmt.Errorf("TLS root certificate: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for name, der := range files {
		if err := atomicfile.Write(filepath.Join(dir, name), encodePEM(der), 0o644); err != nil {
			return err
		}
	}
	return atomicfile.WriteNew(filepath.Join(dir, FileRoot), encodePEM(rootDER), 0o644)
}

// ensureKey creates the named key, or takes the existing one if it is of
// the wanted suite, and returns its signer.
func ensureKey(ctx context.Context, km keys.Manager, name string, suite sigalg.ID) (crypto.Signer, error) {
	pub, err := km.CreateKey(ctx, keys.CreateKeyRequest{Name: name, Suite: suite})
	if errors.Is(err, keys.ErrExists) {
		pub, err = km.PublicKey(ctx, name)
	}
	if err != nil {
		return nil, fmt.Errorf("CA key %s: %w", name, err)
	}
	have, err := sigalg.SuiteOf(pub)
	if err != nil {
		return nil, fmt.Errorf("CA key %s: %w", name, err)
	}
	if have.ID() != suite {
		return nil, fmt.Errorf("%w: key %s exists and is %s, not %s", ErrCAMismatch, name, have.ID(), suite)
	}
	signer, err := km.Signer(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("CA key %s: %w", name, err)
	}
	return signer, nil
}

// load reads the CA's certificates and checks them against the keys.
func load(ctx context.Context, km keys.Manager, dir string, cfg Config) (*CA, error) {
	root, err := loadCA(ctx, km, dir, FileRoot, cfg.keyName(KeyRoot), nil)
	if err != nil {
		return nil, err
	}
	suite, err := sigalg.SuiteOf(root.PublicKey)
	if err != nil {
		return nil, err
	}
	if cfg.Suite != "" && cfg.Suite != suite.ID() {
		return nil, fmt.Errorf("%w: the CA is %s, the configuration asks for %s", ErrCAMismatch, suite.ID(), cfg.Suite)
	}
	issuing, err := loadCA(ctx, km, dir, FileIssuing, cfg.keyName(KeyIssuing), root)
	if err != nil {
		return nil, err
	}
	ca := &CA{cfg: cfg, suite: suite, root: root, issuing: issuing, random: rand.Reader, bundle: encodePEM(root.Raw)}
	if ca.issuingSigner, err = km.Signer(ctx, cfg.keyName(KeyIssuing)); err != nil {
		return nil, fmt.Errorf("CA key %s: %w", cfg.keyName(KeyIssuing), err)
	}
	if cfg.member != "" {
		return ca, nil // device certificates only: no TLS issuer
	}
	ca.tlsIssuer, ca.tlsSigner = issuing, ca.issuingSigner
	if tlsCapable(suite.ID()) {
		if err := ensureTLSRootCopy(dir, root); err != nil {
			return nil, err
		}
	} else {
		if ca.tlsIssuer, err = loadCA(ctx, km, dir, FileTLSRoot, KeyTLSRoot, nil); err != nil {
			return nil, err
		}
		if ca.tlsSigner, err = km.Signer(ctx, KeyTLSRoot); err != nil {
			return nil, fmt.Errorf("CA key %s: %w", KeyTLSRoot, err)
		}
		ca.bundle = append(ca.bundle, encodePEM(ca.tlsIssuer.Raw)...)
	}
	return ca, nil
}

// ensureTLSRootCopy makes tls-root.pem of a CA whose root TLS can verify
// hold that root, so that TLS clients trust one file name under every
// suite. CA directories made before the copy existed get it written now;
// a tls-root.pem holding anything else is refused.
func ensureTLSRootCopy(dir string, root *parsedCert) error {
	path := filepath.Join(dir, FileTLSRoot)
	have, err := readCertPEM(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := atomicfile.Write(path, encodePEM(root.Raw), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", FileTLSRoot, err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if !bytes.Equal(have.Raw, root.Raw) {
		return fmt.Errorf("%w: %s is not a copy of %s", ErrCAMismatch, FileTLSRoot, FileRoot)
	}
	return nil
}

// loadCA reads a CA certificate from dir and checks that it holds the
// public key of the named key, is a CA, and is signed by issuer (by
// itself when issuer is nil).
func loadCA(ctx context.Context, km keys.Manager, dir, file, keyName string, issuer *parsedCert) (*parsedCert, error) {
	cert, err := readCertPEM(filepath.Join(dir, file))
	if err != nil {
		return nil, err
	}
	pub, err := km.PublicKey(ctx, keyName)
	if err != nil {
		return nil, fmt.Errorf("CA key %s: %w", keyName, err)
	}
	spki, err := sigalg.MarshalPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("CA key %s: %w", keyName, err)
	}
	if !bytes.Equal(spki, cert.RawSubjectPublicKeyInfo) {
		return nil, fmt.Errorf("%w: %s does not hold the public key of %s", ErrCAMismatch, file, keyName)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("%w: %s is not a CA certificate", ErrCAMismatch, file)
	}
	if issuer == nil {
		issuer = cert
	}
	if !issues(issuer, cert) {
		return nil, fmt.Errorf("%w: %s is not issued by %q", ErrCAMismatch, file, issuer.Subject.CommonName)
	}
	if err := cert.checkSignedBy(issuer.Certificate); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCAMismatch, file, err)
	}
	return cert, nil
}

// readCertPEM reads a file holding exactly one PEM certificate.
func readCertPEM(path string) (*parsedCert, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCertPEM+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxCertPEM {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxCertPEM)
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != pemCertificate || len(block.Headers) != 0 || strings.TrimSpace(string(rest)) != "" {
		return nil, fmt.Errorf("%s: want exactly one PEM %q block", path, pemCertificate)
	}
	cert, err := parseCert(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cert, nil
}

func encodePEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der})
}
