package device

import (
	"crypto"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"slices"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// pufOperationalInfo separates the operational key a PUF chip derives from
// its enrolment key; the suite name is appended so that each suite gets an
// independent key.
const pufOperationalInfo = "hallmark puf operational key v1 "

// OperationalKey returns the key the device uses in the field (its TLS
// client key), distinct from the enrolment key that proves its identity. A
// puf chip derives it from its PUF like the enrolment key and stores
// nothing; keygen and inject chips generate it in the protected key store
// the first time it is asked for. Firmware must be running.
func (d *Device) OperationalKey(alg sigalg.ID) (crypto.Signer, error) {
	if d.running == nil {
		return nil, fmt.Errorf("operational key: %w", ErrNotRunning)
	}
	suite, err := alg.Suite()
	if err != nil {
		return nil, fmt.Errorf("operational key: %w", err)
	}
	if d.st.Class == ClassTPM {
		return d.tpmOperationalKey(suite.ID())
	}
	if d.st.Class == ClassPUF {
		seed, err := d.reconstructPUF()
		if err != nil {
			return nil, fmt.Errorf("operational key: %w", err)
		}
		defer clear(seed[:])
		keySeed, err := hkdf.Key(sha256.New, seed[:], nil, pufOperationalInfo+string(suite.ID()), sigalg.SeedSize)
		if err != nil {
			return nil, err
		}
		defer clear(keySeed)
		return suite.DeriveKey(keySeed)
	}
	ks := d.st.KeyStore
	if ks.OperationalKey != nil {
		key, keySuite, err := sigalg.ParsePrivateKeyWithSuite(ks.OperationalKey)
		if err != nil {
			return nil, fmt.Errorf("%w: operational key: %v", ErrMalformedState, err)
		}
		if keySuite.ID() == suite.ID() {
			return key, nil
		}
	}
	key, err := suite.GenerateKey(d.rand)
	if err != nil {
		return nil, fmt.Errorf("operational key: %w", err)
	}
	if ks.OperationalKey, err = sigalg.MarshalPrivateKey(key); err != nil {
		return nil, err
	}
	return key, nil
}

// Credentials are what onboarding gave the device: public data, kept in
// flash.
type Credentials struct {
	CertificateChain []string  `json:"certificate_chain"` // PEM, leaf first
	TrustBundle      string    `json:"trust_bundle"`      // PEM
	CloudEndpoint    string    `json:"cloud_endpoint"`
	OperationalAlg   sigalg.ID `json:"operational_algorithm"`
}

// SetCredentials stores credentials in flash.
func (d *Device) SetCredentials(c Credentials) {
	c.CertificateChain = slices.Clone(c.CertificateChain)
	d.st.Flash.Credentials = &c
}

// Credentials returns the stored credentials, or nil before onboarding.
func (d *Device) Credentials() *Credentials {
	if d.st.Flash.Credentials == nil {
		return nil
	}
	c := *d.st.Flash.Credentials
	c.CertificateChain = slices.Clone(c.CertificateChain)
	return &c
}
