package device

import (
	"context"
	"crypto"
	"errors"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/tpm"
)

// ClassTPM is a Linux gateway whose keys live in its TPM 2.0: the
// enrolment key and the operational key are created inside the TPM, never
// leave it, and sign there. The simulated ROM, flash and OTP stand for the
// gateway's secure boot and disk as for every class; the TPM is real
// (a device node or the swtpm simulator, see internal/tpm).
//
// A TPM signs with ECDSA P-256 only here: TPM 2.0 parts in the field
// offer RSA and NIST-curve ECDSA, and no Ed25519 or ML-DSA.
const ClassTPM Class = "tpm"

// ErrNoTPM is a tpm-class device used with no TPM to hand.
var ErrNoTPM = errors.New("tpm-class device has no TPM")

// tpmPart is what a tpm-class device keeps about its TPM: where it is, and
// each key as the TPM wrapped it under its storage root key (public area
// and encrypted private area, which only that TPM can load). None of it is
// secret.
type tpmPart struct {
	Address        string       `json:"address"`
	EnrolmentKey   *tpm.KeyBlob `json:"enrolment_key,omitempty"`
	OperationalKey *tpm.KeyBlob `json:"operational_key,omitempty"`
}

func (p *tpmPart) check() error {
	if _, err := tpm.ParseAddress(p.Address); err != nil {
		return err
	}
	for _, b := range []*tpm.KeyBlob{p.EnrolmentKey, p.OperationalKey} {
		if b != nil {
			if _, err := tpm.ParseKeyBlob(*b); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkTPMState checks the sections of a tpm-class state: a TPM section,
// and a protected key store that holds nothing, since the TPM holds the
// keys.
func (st *state) checkTPMState() error {
	if (st.Class == ClassTPM) != (st.TPM != nil) {
		return fmt.Errorf("sections do not match class %s", st.Class)
	}
	if st.TPM == nil {
		return nil
	}
	if st.Algorithm != sigalg.ECDSAP256 {
		return fmt.Errorf("a tpm chip's keys are %s, not %s", sigalg.ECDSAP256, st.Algorithm)
	}
	if ks := st.KeyStore; ks.EnrolmentKey != nil || ks.PendingKey != nil || ks.OperationalKey != nil || ks.ClassKey != nil {
		return fmt.Errorf("a tpm chip keeps its keys in the TPM, not in the key store")
	}
	return st.TPM.check()
}

// makeTPM checks that the configured TPM answers and records where it is.
// The keys are created when first asked for, as on a keygen chip.
func (d *Device) makeTPM(cfg Config) error {
	if cfg.Algorithm != sigalg.ECDSAP256 {
		return fmt.Errorf("%w: a TPM 2.0 signs with %s, not %s (no Ed25519 or ML-DSA in TPM 2.0)", ErrConfig, sigalg.ECDSAP256, cfg.Algorithm)
	}
	if cfg.ClassKey != nil {
		return fmt.Errorf("%w: a tpm-class device takes no device-class key", ErrConfig)
	}
	addr, err := tpm.ParseAddress(cfg.TPM)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	d.st.KeyStore = &keyStore{}
	d.st.TPM = &tpmPart{Address: addr.String()}
	_, err = d.openTPM()
	return err
}

// SetTPM points a tpm-class device at its TPM's address, for a gateway
// whose TPM moved (a simulator on another port). The keys must load in the
// TPM found there, or nothing changes.
func (d *Device) SetTPM(address string) error {
	if d.st.Class != ClassTPM {
		return fmt.Errorf("%w: a %s chip has no TPM", ErrConfig, d.st.Class)
	}
	addr, err := tpm.ParseAddress(address)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	old, oldTPM := d.st.TPM.Address, d.tpm
	d.st.TPM.Address, d.tpm = addr.String(), nil
	t, err := d.openTPM()
	if err == nil {
		for _, b := range []*tpm.KeyBlob{d.st.TPM.EnrolmentKey, d.st.TPM.OperationalKey} {
			if b != nil {
				if _, err = t.LoadKey(context.Background(), *b); err != nil {
					break
				}
			}
		}
	}
	if err != nil {
		d.st.TPM.Address, d.tpm = old, oldTPM
		return fmt.Errorf("set tpm: %w", err)
	}
	return nil
}

// TPMAddress returns where a tpm-class device's TPM is, or "".
func (d *Device) TPMAddress() string {
	if d.st.TPM == nil {
		return ""
	}
	return d.st.TPM.Address
}

func (d *Device) openTPM() (*tpm.TPM, error) {
	if d.tpm != nil {
		return d.tpm, nil
	}
	addr, err := tpm.ParseAddress(d.st.TPM.Address)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoTPM, err)
	}
	t, err := tpm.Open(context.Background(), addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoTPM, err)
	}
	d.tpm = t
	return t, nil
}

// tpmKey loads the key in *slot, or has the TPM create one there.
func (d *Device) tpmKey(slot **tpm.KeyBlob) (crypto.Signer, error) {
	t, err := d.openTPM()
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	if *slot != nil {
		return t.LoadKey(ctx, **slot)
	}
	key, blob, err := t.CreateKey(ctx)
	if err != nil {
		return nil, err
	}
	*slot = &blob
	return key, nil
}

func (d *Device) tpmEnrolmentKey() (crypto.Signer, error) {
	return d.tpmKey(&d.st.TPM.EnrolmentKey)
}

func (d *Device) tpmOperationalKey(alg sigalg.ID) (crypto.Signer, error) {
	if alg != sigalg.ECDSAP256 {
		return nil, fmt.Errorf("operational key: %w: the TPM holds %s keys only, not %s", sigalg.ErrUnknownAlgorithm, sigalg.ECDSAP256, alg)
	}
	return d.tpmKey(&d.st.TPM.OperationalKey)
}
