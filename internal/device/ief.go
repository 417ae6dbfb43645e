package device

import (
	"bytes"
	"crypto"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// iefProgram is the payload of the initial enrolment firmware. The
// simulator does not execute machine code: the ROM starts the program that
// the verified payload names.
var iefProgram = []byte("hallmark initial enrolment firmware v1\n")

// IEFPayload returns the payload to sign as the initial enrolment firmware.
func IEFPayload() []byte { return bytes.Clone(iefProgram) }

// Enrolment is what the initial enrolment firmware gives out: public data
// only.
type Enrolment struct {
	Identity  identity.ID
	PublicKey []byte // DER SubjectPublicKeyInfo
	Algorithm sigalg.ID
	Class     Class
	Injection string
	Nonce     []byte
	Proof     []byte // signature over identity.ProofMessage(FactoryProofContext, Nonce, Identity)
}

// Enrol runs the initial enrolment firmware: it makes the device give out
// its enrolment public key, identity and a proof of possession over the
// station's nonce. It needs the ROM to have booted a verified IEF.
func (d *Device) Enrol(nonce []byte) (*Enrolment, error) {
	if d.running == nil {
		return nil, fmt.Errorf("enrol: %w", ErrNotRunning)
	}
	if d.running.header.Type != firmware.TypeIEF || !bytes.Equal(d.running.payload, iefProgram) {
		return nil, fmt.Errorf("enrol: %w", ErrNotIEF)
	}
	if len(nonce) == 0 || len(nonce) > identity.MaxNonce {
		return nil, fmt.Errorf("enrol: nonce of %d bytes (want 1 to %d)", len(nonce), identity.MaxNonce)
	}
	key, suite, id, err := d.identityKey()
	if err != nil {
		return nil, fmt.Errorf("enrol: %w", err)
	}
	proof, err := suite.Sign(key, identity.ProofMessage(identity.FactoryProofContext, nonce, id))
	if err != nil {
		return nil, fmt.Errorf("enrol: %w", err)
	}
	spki, err := sigalg.MarshalPublicKey(key.Public())
	if err != nil {
		return nil, fmt.Errorf("enrol: %w", err)
	}
	return &Enrolment{
		Identity: id, PublicKey: spki, Algorithm: suite.ID(), Class: d.st.Class,
		Injection: d.injection(), Nonce: bytes.Clone(nonce), Proof: proof,
	}, nil
}

// Prove signs a domain-separated proof of possession for any protocol step
// (context names it), as running firmware asks the root of trust to do.
func (d *Device) Prove(context string, nonce []byte) (identity.ID, []byte, error) {
	if d.running == nil {
		return identity.ID{}, nil, fmt.Errorf("prove: %w", ErrNotRunning)
	}
	key, suite, id, err := d.identityKey()
	if err != nil {
		return identity.ID{}, nil, fmt.Errorf("prove: %w", err)
	}
	sig, err := suite.Sign(key, identity.ProofMessage(context, nonce, id))
	if err != nil {
		return identity.ID{}, nil, fmt.Errorf("prove: %w", err)
	}
	return id, sig, nil
}

func (d *Device) identityKey() (crypto.Signer, sigalg.Suite, identity.ID, error) {
	key, err := d.enrolmentKey()
	if err != nil {
		return nil, nil, identity.ID{}, err
	}
	suite, err := sigalg.SuiteOf(key)
	if err != nil {
		return nil, nil, identity.ID{}, err
	}
	id, err := identity.FromPublicKey(key.Public())
	return key, suite, id, err
}

func (d *Device) injection() string {
	if d.st.Class == ClassInject {
		return d.st.KeyStore.Injection
	}
	return InjectionNone
}

// Class returns the chip's root of trust.
func (d *Device) Class() Class { return d.st.Class }

// Algorithm returns the suite of the chip's enrolment key.
func (d *Device) Algorithm() sigalg.ID { return d.st.Algorithm }

// ChipID returns the chip's public serial number.
func (d *Device) ChipID() string { return d.st.ChipID }

// SecurityCounter returns the anti-rollback counter burned in OTP.
func (d *Device) SecurityCounter() uint32 { return d.st.OTP.SecurityCounter }

// HasChannel reports whether the bootloader offers an encrypted
// programming channel.
func (d *Device) HasChannel() bool { return d.st.Loader != nil }

// NeedsKey reports whether the chip is an inject-class chip still waiting
// for its enrolment key.
func (d *Device) NeedsKey() bool {
	return d.st.Class == ClassInject && d.st.KeyStore.EnrolmentKey == nil
}

// Identity returns the device's identity, which running firmware reads from
// its root of trust.
func (d *Device) Identity() (identity.ID, error) {
	if d.running == nil {
		return identity.ID{}, fmt.Errorf("identity: %w", ErrNotRunning)
	}
	_, _, id, err := d.identityKey()
	return id, err
}
