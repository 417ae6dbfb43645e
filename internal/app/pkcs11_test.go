//go:build cgo

package app

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/keys/pkcs11kms"
	"github.com/hallmark-iot/hallmark/internal/keys/pkcs11kms/softhsmtest"
	"github.com/hallmark-iot/hallmark/internal/migration"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// The tests here run the platform with its CA key URI naming a SoftHSM2
// token. softhsmtest gives the test process one SoftHSM2 configuration and
// every test a fresh token of its own (SoftHSM2 reads SOFTHSM2_CONF once
// per process, at C_Initialize).

// newTokenDataDir is newDataDir without the software key store and its
// passphrase file: a data directory whose CA keys are to live in a token.
func newTokenDataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	db, err := migratedRegistry()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, DatabaseFile), db, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestServeCAKeysInToken: with --ca-key-uri pkcs11:… the CA's root and
// issuing keys and the TLS key are made in the token on first start, a
// device onboards over TLS 1.3 signed by the token, the keys are sensitive
// and non-extractable token objects, nothing stands in for the PIN in the
// data directory, and a restart finds the same keys.
func TestServeCAKeysInToken(t *testing.T) {
	tok := softhsmtest.New(t)
	dir := newTokenDataDir(t)
	cfg := Config{DataDir: dir, Listen: "127.0.0.1:0", ServerName: "localhost", CASuite: sigalg.ECDSAP256, CAKeyURI: tok.URI}
	p, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start with the CA in a token: %v", err)
	}
	t.Cleanup(func() { p.Close() })

	f := newFleet(t, sigalg.ECDSAP256)
	f.register(t, adminClient(t, p))
	creds, _, err := onboard(t, p, f.devices[0], f.ids[0])
	if err != nil {
		t.Fatalf("onboarding with the CA in a token: %v", err)
	}
	served := servedTLSKey(t, p.URL(), p.CA.RootPEM())
	block, _ := pem.Decode([]byte(creds.CertificateChain[1]))
	if block == nil {
		t.Fatal("no issuing CA in the device's chain")
	}
	issuing := p.CA.IssuingCertificate()
	if !bytes.Equal(block.Bytes, issuing.Raw) {
		t.Fatal("the device's chain does not end in the platform's issuing CA")
	}

	// The token, opened as anyone holding the PIN would, holds the public
	// halves of exactly the keys the platform serves.
	km, err := keys.Open(context.Background(), tok.URI, keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer km.Close()
	for name, want := range map[string][]byte{
		pki.KeyRoot:      p.CA.RootCertificate().RawSubjectPublicKeyInfo,
		pki.KeyIssuing:   issuing.RawSubjectPublicKeyInfo,
		pki.KeyTLSServer: served,
	} {
		pub, err := km.PublicKey(context.Background(), name)
		if err != nil {
			t.Fatalf("%s is not in the token: %v", name, err)
		}
		spki, err := sigalg.MarshalPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(spki, want) {
			t.Errorf("the token's %s is not the key the platform uses", name)
		}
		checkNonExtractable(t, tok, name)
	}
	for _, name := range []string{CAPassphraseFile, KeysDir} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists in the data directory of a token-backed CA (%v)", name, err)
		}
	}

	p.Close()
	again, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("restart with the CA in a token: %v", err)
	}
	defer again.Close()
	if !bytes.Equal(again.CA.RootCertificate().Raw, p.CA.RootCertificate().Raw) {
		t.Fatal("restart made a new CA instead of using the token's keys")
	}
	if !bytes.Equal(servedTLSKey(t, again.URL(), again.CA.RootPEM()), served) {
		t.Fatal("restart served another TLS key")
	}
}

// checkNonExtractable reads the PKCS #11 attributes of the private key
// named name in tok, through a session of this process's own (the user is
// logged in while a Manager of the token is open: login state is the
// application's), and tries, as an attacker with the PIN would, to read its
// value.
func checkNonExtractable(t *testing.T, tok *softhsmtest.Token, name string) {
	t.Helper()
	ctx := pkcs11.New(tok.Module)
	if ctx == nil {
		t.Fatalf("load %s", tok.Module)
	}
	// No Finalize: pkcs11kms initialised the module and owns it; Destroy
	// only drops this handle's reference to the library.
	defer ctx.Destroy()
	if err := ctx.Initialize(); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		t.Fatal(err)
	}
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	var sh pkcs11.SessionHandle
	found := false
	for _, slot := range slots {
		ti, err := ctx.GetTokenInfo(slot)
		if err == nil && ti.Label == tok.Label {
			if sh, err = ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION); err != nil {
				t.Fatal(err)
			}
			found = true
			break
		}
	}
	if !found {
		t.Fatalf("token %s not found", tok.Label)
	}
	defer ctx.CloseSession(sh)
	if err := ctx.FindObjectsInit(sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, name),
	}); err != nil {
		t.Fatal(err)
	}
	objs, _, err := ctx.FindObjects(sh, 2)
	ctx.FindObjectsFinal(sh)
	if err != nil || len(objs) != 1 {
		t.Fatalf("private key %s: %d objects (%v), want 1", name, len(objs), err)
	}
	attrs, err := ctx.GetAttributeValue(sh, objs[0], []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, nil),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_NEVER_EXTRACTABLE, nil),
	})
	if err != nil || len(attrs) != 4 {
		t.Fatalf("private key %s: %d attributes (%v), want 4", name, len(attrs), err)
	}
	want := map[uint]bool{pkcs11.CKA_TOKEN: true, pkcs11.CKA_SENSITIVE: true, pkcs11.CKA_EXTRACTABLE: false, pkcs11.CKA_NEVER_EXTRACTABLE: true}
	for _, a := range attrs {
		if got := len(a.Value) == 1 && a.Value[0] != 0; got != want[a.Type] {
			t.Errorf("private key %s: attribute 0x%x is %v, want %v", name, a.Type, got, want[a.Type])
		}
	}
	if v, err := ctx.GetAttributeValue(sh, objs[0], []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)}); err == nil && len(v) == 1 && len(v[0].Value) > 0 {
		t.Errorf("the token hands out the value of private key %s", name)
	}
}

// TestServeWrongPIN: a wrong PIN fails the start before anything is made,
// with an error that says what to check and holds neither PIN.
func TestServeWrongPIN(t *testing.T) {
	tok := softhsmtest.New(t)
	wrong := filepath.Join(t.TempDir(), "wrong-pin")
	if err := os.WriteFile(wrong, []byte("99999999\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	_, err := Start(context.Background(), Config{DataDir: dataDir, Listen: "127.0.0.1:0",
		CAKeyURI: pkcs11kms.TokenURI(tok.Label, tok.Module, wrong)})
	if !errors.Is(err, keys.ErrPassphrase) {
		t.Fatalf("Start with a wrong PIN = %v, want keys.ErrPassphrase", err)
	}
	msg := err.Error()
	t.Log(msg)
	if strings.Contains(msg, "99999999") || strings.Contains(msg, tok.PIN) || strings.Contains(msg, "\n") || !strings.Contains(msg, "PIN") {
		t.Fatalf("error %q: want one line that names the PIN as the problem and holds none", msg)
	}
	if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a start refused for its PIN made %s (%v)", dataDir, err)
	}
}

// TestServeMLDSACAOnTokenWithoutMLDSA: an ML-DSA CA on a token that lacks
// the ML-DSA mechanisms (SoftHSM2 2.6) fails the start with the missing
// mechanism and what to do instead.
func TestServeMLDSACAOnTokenWithoutMLDSA(t *testing.T) {
	tok := softhsmtest.New(t)
	_, err := Start(context.Background(), Config{DataDir: newTokenDataDir(t), Listen: "127.0.0.1:0", ServerName: "localhost",
		CASuite: sigalg.ECDSAP256, CASuites: []sigalg.ID{sigalg.MLDSA65}, CAKeyURI: tok.URI})
	if !errors.Is(err, keys.ErrUnsupported) {
		t.Fatalf("Start = %v, want keys.ErrUnsupported", err)
	}
	t.Log(err)
	for _, want := range []string{"CKM_ML_DSA", "ml-dsa-65", "soft:", "--ca-suite"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestInjectMigrationWithTokenRefusedClearly: a platform whose key store is
// a token that can neither make ML-DSA keys nor seal to a chip's HPKE
// transport key answers an inject chip's migration challenge with a
// problem that says so (not a 500), and releases nothing.
func TestInjectMigrationWithTokenRefusedClearly(t *testing.T) {
	tok := softhsmtest.New(t)
	e := newInjectEnvWith(t, newTokenDataDir(t), func(c *Config) { c.CAKeyURI = tok.URI })
	d, err := device.Load(e.state, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Boot(); err != nil {
		t.Fatal(err)
	}
	own, _ := d.TransportKey()
	ownRaw := sealing.MarshalPublicKey(own)
	_, sig, err := d.Prove(migration.TransportKeyContext, migration.TransportKeyMessage("localhost", ownRaw))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := e.agent(t, nil)
	ctx := context.Background()
	_, err = a.Migrator.MigrationChallenge(ctx, migration.ChallengeRequest{TransportKey: ownRaw, TransportKeySignature: sig})
	var p *httpapi.Problem
	if !errors.As(err, &p) || p.Code != "migration-not-allowed" || !strings.Contains(p.Detail, "key store cannot release") {
		t.Fatalf("challenge with a token key store: %v, want migration-not-allowed saying why", err)
	}
	list, err := adminClient(t, e.p).ListAudit(ctx, httpapi.AuditQuery{Action: migration.ActionKeySealed})
	if err != nil || len(list.Events) != 0 {
		t.Fatalf("a key was released: %+v, %v", list, err)
	}
}
