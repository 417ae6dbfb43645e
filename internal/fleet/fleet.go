// Package fleet owns Hallmark's load generator: a simulated fleet of
// devices determined entirely by a 32-byte fleet seed, the signed manifest
// such a fleet's station would write, concurrent onboarding of the fleet
// against a platform with the real onboarding client, over a fresh TLS
// connection per device or keep-alive ones (Connections), with the
// platform's CPU per onboarding read from its metrics (CPUMeter), the
// "crypto ceiling" a measured onboarding rate is compared with and the
// server-side crypto floor (handshake included) its CPU is, and the timing
// probe that checks refusals do not tell registered identities from
// unknown ones (ProbeTiming, with its rank test), and the update and
// migration load (Update: the real update agent on simulated chips made
// from the seed's keys and the chains onboarding kept in a credentials
// file).
//
// Device i's enrolment key is suite.DeriveKey(HKDF-SHA256(seed, info =
// "hallmark fleet device" || 0x00 || uint64(i))) and its operational key
// the same with "hallmark fleet operational", so a manifest of a million
// devices is generated once and the load generator regenerates any
// device's keys in memory later, storing nothing. docs/fleet.md describes
// the commands and the report.
package fleet

import (
	"crypto"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// SeedSize is the size of a fleet seed.
const SeedSize = 32

// HKDF info labels; changing one changes every fleet.
const (
	labelEnrolment   = "hallmark fleet device"
	labelOperational = "hallmark fleet operational"
)

// Fleet is the set of devices one seed determines. It is immutable and
// safe for concurrent use.
type Fleet struct {
	prk   []byte // HKDF-Extract(seed): each device costs only an Expand
	suite sigalg.Suite
	op    sigalg.Suite
}

// New returns the fleet of seed whose enrolment keys are of suite and
// whose operational keys are of op (ecdsa-p256 if nil, since TLS stacks
// cannot use ML-DSA client keys yet).
func New(seed []byte, suite, op sigalg.Suite) (*Fleet, error) {
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("fleet: seed is %d bytes, want %d", len(seed), SeedSize)
	}
	if suite == nil {
		return nil, errors.New("fleet: no enrolment key suite")
	}
	if op == nil {
		var err error
		if op, err = sigalg.ECDSAP256.Suite(); err != nil {
			return nil, fmt.Errorf("fleet: %w", err)
		}
	}
	prk, err := hkdf.Extract(sha256.New, seed, nil)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	return &Fleet{prk: prk, suite: suite, op: op}, nil
}

// Suite is the suite of the fleet's enrolment keys.
func (f *Fleet) Suite() sigalg.Suite { return f.suite }

// OperationalSuite is the suite of the fleet's operational keys.
func (f *Fleet) OperationalSuite() sigalg.Suite { return f.op }

func (f *Fleet) derive(label string, suite sigalg.Suite, index uint64) (crypto.Signer, error) {
	info := make([]byte, 0, len(label)+9)
	info = append(info, label...)
	info = append(info, 0)
	info = binary.BigEndian.AppendUint64(info, index)
	seed, err := hkdf.Expand(sha256.New, f.prk, string(info), sigalg.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("derive device %d: %w", index, err)
	}
	key, err := suite.DeriveKey(seed)
	clear(seed)
	if err != nil {
		return nil, fmt.Errorf("derive device %d: %w", index, err)
	}
	return key, nil
}

// EnrolmentKey derives device index's enrolment key.
func (f *Fleet) EnrolmentKey(index uint64) (crypto.Signer, error) {
	return f.derive(labelEnrolment, f.suite, index)
}

// OperationalKey derives device index's operational key.
func (f *Fleet) OperationalKey(index uint64) (crypto.Signer, error) {
	return f.derive(labelOperational, f.op, index)
}

// Device is one member of the fleet, regenerated in memory. It implements
// onboarding.Prover. A Device is used by one goroutine at a time.
type Device struct {
	Index    uint64
	Identity identity.ID
	// SPKI is the enrolment public key, DER SubjectPublicKeyInfo.
	SPKI  []byte
	suite sigalg.Suite
	key   crypto.Signer
}

// Device derives device index's enrolment key and identity.
func (f *Fleet) Device(index uint64) (*Device, error) {
	key, err := f.EnrolmentKey(index)
	if err != nil {
		return nil, err
	}
	spki, err := sigalg.MarshalPublicKey(key.Public())
	if err != nil {
		return nil, fmt.Errorf("device %d: %w", index, err)
	}
	return &Device{Index: index, Identity: identity.FromSPKI(spki), SPKI: spki, suite: f.suite, key: key}, nil
}

// Prove signs identity.ProofMessage(context, nonce, id) with the enrolment
// key, as a device's initial enrolment firmware does.
func (d *Device) Prove(context string, nonce []byte) (identity.ID, []byte, error) {
	sig, err := d.suite.Sign(d.key, identity.ProofMessage(context, nonce, d.Identity))
	if err != nil {
		return identity.ID{}, nil, fmt.Errorf("device %d: %w", d.Index, err)
	}
	return d.Identity, sig, nil
}

// Onboardable is a device ready to onboard: its operational key and that
// key's SPKI, derived before the clock starts. The device makes its CSR
// during the exchange, bound to the platform's challenge, as a real device
// does. It is an onboarding.Onboardee, whose Identity method hides the
// Device's field of that name (d.Device.Identity).
type Onboardable struct {
	*Device
	Operational     crypto.Signer
	OperationalSPKI []byte
	opSuite         sigalg.ID
}

// Identity is the device's identity, for onboarding.Onboardee.
func (d *Onboardable) Identity() (identity.ID, error) { return d.Device.Identity, nil }

// OperationalKey is the operational key, which is of the fleet's one
// operational suite, for onboarding.Onboardee.
func (d *Onboardable) OperationalKey(suite sigalg.ID) (crypto.Signer, error) {
	if suite != d.opSuite {
		return nil, fmt.Errorf("device %d: the operational key is %s, not %s", d.Index, d.opSuite, suite)
	}
	return d.Operational, nil
}

// Onboardable derives device index with its operational key.
func (f *Fleet) Onboardable(index uint64) (*Onboardable, error) {
	dev, err := f.Device(index)
	if err != nil {
		return nil, err
	}
	op, err := f.OperationalKey(index)
	if err != nil {
		return nil, err
	}
	opSPKI, err := sigalg.MarshalPublicKey(op.Public())
	if err != nil {
		return nil, fmt.Errorf("device %d: operational key: %w", index, err)
	}
	return &Onboardable{Device: dev, Operational: op, OperationalSPKI: opSPKI, opSuite: f.op.ID()}, nil
}
