package democmd

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/hallmark-iot/hallmark/internal/app"
	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/keys/pkcs11kms"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/tpm"
)

// "hallmark demo --hsm" runs the same demo with its keys in hardware, as
// far as a machine without any can: the platform's CA and TLS keys in a
// SoftHSM2 token, and one gateway of the fleet whose keys live in a TPM 2.0
// (the swtpm simulator). Both are the demo's own: it makes the token in a
// temporary directory and starts the simulator, and removes both at the
// end, so the machine's SoftHSM2 tokens and TPM are never touched.

// errNoCgo says why a hallmark built without cgo cannot run --hsm.
var errNoCgo = errors.New("demo --hsm: this hallmark was built with CGO_ENABLED=0, and PKCS #11 needs cgo; build it with a C compiler")

// hsmPreflight checks, before the demo starts, that what --hsm needs is
// installed, and names the Debian package that is not.
func hsmPreflight() (module string, err error) {
	if !pkcs11Built {
		return "", errNoCgo
	}
	for _, p := range pkcs11kms.SoftHSM2Paths {
		if _, err := os.Stat(p); err == nil {
			module = p
			break
		}
	}
	if module == "" {
		return "", fmt.Errorf("demo --hsm: the SoftHSM2 module is not installed (looked for %s): install the Debian package softhsm2",
			strings.Join(pkcs11kms.SoftHSM2Paths[:2], " and "))
	}
	if _, err := exec.LookPath("swtpm"); err != nil {
		return "", fmt.Errorf("demo --hsm: swtpm is not installed: install the Debian package swtpm")
	}
	return module, nil
}

// demoHardware is the token and the TPM of one --hsm run.
type demoHardware struct {
	module, label string
	// caKeyURI opens the token: pkcs11:token=LABEL?module-path=…&pin-source=file:…
	caKeyURI string
	sim      *tpm.Simulator
	// restoreConf puts SOFTHSM2_CONF back as it was.
	restoreConf func()
}

// startDemoHardware makes a SoftHSM2 token and starts swtpm, both under
// dir. SoftHSM2 reads SOFTHSM2_CONF when this process initialises the
// module, so the variable is set for the whole process before the token
// is made (through the process's own instance of the module, so that no
// PIN is ever on a command line) and stays set while the platform uses
// the token; close restores it.
func startDemoHardware(ctx context.Context, dir, module string) (_ *demoHardware, err error) {
	h := &demoHardware{module: module, label: "hallmark-demo-" + randomHex(4), restoreConf: func() {}}
	defer func() {
		if err != nil {
			h.close()
		}
	}()
	hsmDir := filepath.Join(dir, "softhsm")
	tokens := filepath.Join(hsmDir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return nil, err
	}
	conf := filepath.Join(hsmDir, "softhsm2.conf")
	body := "directories.tokendir = " + tokens + "\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return nil, err
	}
	old, had := os.LookupEnv("SOFTHSM2_CONF")
	if err := os.Setenv("SOFTHSM2_CONF", conf); err != nil {
		return nil, err
	}
	h.restoreConf = func() {
		if had {
			os.Setenv("SOFTHSM2_CONF", old)
		} else {
			os.Unsetenv("SOFTHSM2_CONF")
		}
	}
	pin, soPIN := randomHex(16), randomHex(16)
	pinFile := filepath.Join(hsmDir, "user.pin")
	if err := os.WriteFile(pinFile, []byte(pin+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := pkcs11kms.InitToken(ctx, module, h.label, []byte(soPIN), []byte(pin)); err != nil {
		return nil, fmt.Errorf("SoftHSM2 token: %w", err)
	}
	h.caKeyURI = pkcs11kms.TokenURI(h.label, module, pinFile)

	tpmDir := filepath.Join(dir, "swtpm")
	if err := os.Mkdir(tpmDir, 0o700); err != nil {
		return nil, err
	}
	if h.sim, err = tpm.StartSimulator(ctx, tpmDir); err != nil {
		return nil, err
	}
	return h, nil
}

// close stops the simulator and restores SOFTHSM2_CONF; the token and the
// simulator's state are files under the demo's directory, which the demo
// removes. The platform must be closed first: it holds the token.
func (h *demoHardware) close() {
	if h == nil {
		return
	}
	if h.sim != nil {
		h.sim.Stop()
	}
	h.restoreConf()
}

// tpmAddress is the simulator's address, "" without --hsm.
func (h *demoHardware) tpmAddress() string {
	if h == nil {
		return ""
	}
	return h.sim.String()
}

// keyURI is the CA key URI the platform starts with: the token's, or ""
// (the software store in the data directory) without --hsm.
func (h *demoHardware) keyURI() string {
	if h == nil {
		return ""
	}
	return h.caKeyURI
}

// showCAKeys says where the platform's keys are, after checking it: the
// root, issuing and TLS keys the platform uses are the token's (their
// public keys match what the token returns for each name), and the data
// directory holds no key store.
func (h *demoHardware) showCAKeys(ctx context.Context, s *cmdline.Streams, p *app.Platform, dataDir string, roots *x509.CertPool) error {
	km, err := keys.Open(ctx, h.caKeyURI, keys.Options{})
	if err != nil {
		return fmt.Errorf("open the demo's token: %w", err)
	}
	defer km.Close()
	tlsLeaf, err := platformTLSLeaf(ctx, p, roots)
	if err != nil {
		return err
	}
	for _, k := range []struct {
		name string
		pub  crypto.PublicKey
	}{{pki.KeyRoot, p.CA.RootCertificate().PublicKey}, {pki.KeyIssuing, p.CA.IssuingCertificate().PublicKey}, {pki.KeyTLSServer, tlsLeaf.PublicKey}} {
		inToken, err := km.PublicKey(ctx, k.name)
		if err != nil {
			return fmt.Errorf("CA key %s in the token: %w", k.name, err)
		}
		if !samePublicKey(inToken, k.pub) {
			return fmt.Errorf("the platform's %s key is not the token's key of that name", k.name)
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, app.KeysDir)); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("the data directory holds a key store (%s) although the CA keys are in the token", app.KeysDir)
	}
	_, err = fmt.Fprintf(s.Out, "CA keys: %s, %s and %s are in SoftHSM2 token %q (PKCS #11 module %s), created there as\n"+
		"non-extractable, sensitive token objects: the platform signs through the token and never holds them;\n"+
		"the data directory holds no key store. The user PIN was read from a 0600 file (pin-source).\n",
		pki.KeyRoot, pki.KeyIssuing, pki.KeyTLSServer, h.label, h.module)
	return err
}

// platformTLSLeaf is the certificate the platform's HTTPS listener
// presents.
func platformTLSLeaf(ctx context.Context, p *app.Platform, roots *x509.CertPool) (*x509.Certificate, error) {
	u, err := url.Parse(p.URL())
	if err != nil {
		return nil, err
	}
	d := tls.Dialer{Config: &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS13}}
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("TLS handshake with the platform: %w", err)
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0], nil
}

// samePublicKey compares two public keys by their SubjectPublicKeyInfo,
// which every suite's key has.
func samePublicKey(a, b crypto.PublicKey) bool {
	da, errA := sigalg.MarshalPublicKey(a)
	db, errB := sigalg.MarshalPublicKey(b)
	return errA == nil && errB == nil && bytes.Equal(da, db)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// tpmState is what the demo reads of a tpm-class device's state file:
// where its TPM is, the key blobs the TPM wrapped, and the protected key
// store, which must be empty.
type tpmState struct {
	KeyStore map[string]any `json:"protected_key_store"`
	TPM      *struct {
		Address        string      `json:"address"`
		EnrolmentKey   tpm.KeyBlob `json:"enrolment_key"`
		OperationalKey tpm.KeyBlob `json:"operational_key"`
	} `json:"tpm"`
}

// showTPMDevice shows the TPM gateway's identity after checking, against
// the TPM itself, that its identity is the SHA-256 of the enrolment key
// the TPM holds and that its certificate names the operational key the
// TPM holds, and that its state file keeps no private key.
func (h *demoHardware) showTPMDevice(ctx context.Context, s *cmdline.Streams, devices []demoConnected) error {
	var d *demoConnected
	for i := range devices {
		if devices[i].class == string(device.ClassTPM) {
			d = &devices[i]
		}
	}
	if d == nil {
		return errors.New("the batch has no tpm-class device")
	}
	raw, err := os.ReadFile(d.path)
	if err != nil {
		return err
	}
	var st tpmState
	if err := json.Unmarshal(raw, &st); err != nil {
		return fmt.Errorf("device %d state: %w", d.num, err)
	}
	if st.TPM == nil || len(st.KeyStore) != 0 {
		return fmt.Errorf("device %d: want its keys in the TPM and none in its key store", d.num)
	}
	addr, err := tpm.ParseAddress(st.TPM.Address)
	if err != nil {
		return err
	}
	t, err := tpm.Open(ctx, addr)
	if err != nil {
		return err
	}
	enrolment, err := t.LoadKey(ctx, st.TPM.EnrolmentKey)
	if err != nil {
		return fmt.Errorf("device %d: enrolment key: %w", d.num, err)
	}
	operational, err := t.LoadKey(ctx, st.TPM.OperationalKey)
	if err != nil {
		return fmt.Errorf("device %d: operational key: %w", d.num, err)
	}
	if id, err := identity.FromPublicKey(enrolment.Public()); err != nil || id != d.id {
		return fmt.Errorf("device %d: its identity is not the SHA-256 of the TPM's enrolment key (%v)", d.num, err)
	}
	leaf, err := x509.ParseCertificate(d.cert.Certificate[0])
	if err != nil {
		return err
	}
	if !samePublicKey(leaf.PublicKey, operational.Public()) {
		return fmt.Errorf("device %d: its certificate does not name the TPM's operational key", d.num)
	}
	_, err = fmt.Fprintf(s.Out, "\nTPM gateway: device %d, identity %s,\n"+
		"the SHA-256 of an ECDSA P-256 enrolment key created inside the TPM 2.0 at %s (swtpm), fixedTPM and fixedParent:\n"+
		"it never leaves the TPM, which signed the station's challenge and the platform's. Its certificate names a second\n"+
		"key made in the same TPM, which signs its mutual TLS handshakes; its state file keeps only the blobs the TPM wrapped.\n",
		d.num, d.id, addr)
	return err
}
