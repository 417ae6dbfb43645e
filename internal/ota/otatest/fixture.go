package otatest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Vendor is a firmware vendor with one root key per OTP slot.
type Vendor struct {
	Keys   []crypto.Signer
	Hashes [][32]byte
}

// NewVendor makes a vendor with n Ed25519 roots.
func NewVendor(t testing.TB, n int) *Vendor {
	t.Helper()
	ed, err := sigalg.Lookup("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	v := &Vendor{}
	for range n {
		key, err := ed.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		spki, err := sigalg.MarshalPublicKey(key.Public())
		if err != nil {
			t.Fatal(err)
		}
		v.Keys, v.Hashes = append(v.Keys, key), append(v.Hashes, sha256.Sum256(spki))
	}
	return v
}

// ImageSpec describes an image to make.
type ImageSpec struct {
	Counter uint32
	Payload string
	Retire  firmware.SlotMask
	// Signers are the root slots that sign; nil: all of them.
	Signers []int
	// EncryptTo encrypts the image to a device-class key.
	EncryptTo *sealing.PublicKey
	// By signs with this key instead of the vendor's.
	By crypto.Signer
}

// Version is the version Image gives an image of counter c: 2.0.c.
func Version(c uint32) string { return firmware.Version{Major: 2, Patch: uint16(c)}.String() }

// Image makes a signed application image.
func (v *Vendor) Image(t testing.TB, s ImageSpec) []byte {
	t.Helper()
	img, err := firmware.New(firmware.Metadata{Type: firmware.TypeApplication, Version: firmware.Version{Major: 2, Patch: uint16(s.Counter)},
		SecurityCounter: s.Counter, RetireSlots: s.Retire}, []byte(s.Payload))
	if err != nil {
		t.Fatal(err)
	}
	if s.EncryptTo != nil {
		if err := img.Encrypt(s.EncryptTo); err != nil {
			t.Fatal(err)
		}
	}
	signers := s.Signers
	if signers == nil {
		for i := range v.Keys {
			signers = append(signers, i)
		}
	}
	for _, i := range signers {
		if err := img.Sign(v.Keys[i]); err != nil {
			t.Fatal(err)
		}
	}
	if s.By != nil {
		if err := img.Sign(s.By); err != nil {
			t.Fatal(err)
		}
	}
	data, err := img.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// Device makes a chip of class trusting the vendor's roots, running
// firmware 2.0.1 (counter 1), onboarded with a self-signed certificate
// for its ECDSA P-256 operational key, and saved at statePath. It
// returns the chip and its TLS client certificate.
func (v *Vendor) Device(t testing.TB, class device.Class, classKey *sealing.PrivateKey, statePath string) (*device.Device, *tls.Certificate) {
	t.Helper()
	dev, err := device.New(device.Config{Class: class, Algorithm: sigalg.ECDSAP256, RootKeyHashes: v.Hashes, ClassKey: classKey})
	if err != nil {
		t.Fatal(err)
	}
	if class == device.ClassInject {
		p, _ := sigalg.ECDSAP256.Suite()
		key, _ := p.GenerateKey(rand.Reader)
		der, _ := sigalg.MarshalPrivateKey(key)
		if err := dev.InjectKey(der, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := dev.Program(v.Image(t, ImageSpec{Counter: 1, Payload: "app one"})); err != nil {
		t.Fatal(err)
	}
	if err := dev.Boot(); err != nil {
		t.Fatal(err)
	}
	opKey, err := dev.OperationalKey(sigalg.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	id, err := dev.Identity()
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: id.String()},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
		&x509.Certificate{Subject: pkix.Name{CommonName: id.String()}}, opKey.Public(), opKey)
	if err != nil {
		t.Fatal(err)
	}
	chain := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	dev.SetCredentials(device.Credentials{CertificateChain: []string{chain}, TrustBundle: chain,
		CloudEndpoint: "mqtts://broker.test:8883", OperationalAlg: sigalg.ECDSAP256})
	if err := dev.Save(statePath); err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return dev, &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: opKey, Leaf: leaf}
}

// Serve starts p's routes over HTTPS on 127.0.0.1, requiring a client
// certificate, and returns the server and the PEM of its certificate,
// the root a device trusts.
func (p *Platform) Serve(t testing.TB) (*httptest.Server, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(p.Handler())
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS13, ClientAuth: tls.RequireAnyClientCert,
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
