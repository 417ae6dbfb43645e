package fleet

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// ChipTemplate makes fleet devices into simulated chips (internal/device)
// that the real update agent can drive: keygen-class chips trusting the
// vendor's root keys, running a base image, whose protected key store
// already holds the enrolment and operational keys the seed derives for
// the device, and whose flash holds its certificate chain. The keys are
// what the chip would have generated; deriving them from the seed instead
// is what lets the fleet onboard and update any device without storing
// its state. The template is immutable and safe for concurrent use.
type ChipTemplate struct {
	base  map[string]any // a saved chip's state, without keys or credentials
	opAlg sigalg.ID
}

// NewChipTemplate makes the template of fl's chips: OTP with rootHashes,
// slot A holding baseImage, which the ROM must boot.
func NewChipTemplate(fl *Fleet, rootHashes [][32]byte, baseImage []byte) (*ChipTemplate, error) {
	chip, err := device.New(device.Config{Class: device.ClassKeygen, Algorithm: fl.suite.ID(), RootKeyHashes: rootHashes})
	if err != nil {
		return nil, fmt.Errorf("fleet chip: %w", err)
	}
	if err := chip.Program(baseImage); err != nil {
		return nil, fmt.Errorf("fleet chip: %w", err)
	}
	if err := chip.Boot(); err != nil {
		return nil, fmt.Errorf("fleet chip: the base image does not boot under the roots given: %w", err)
	}
	// The device package persists a chip only to a file.
	dir, err := os.MkdirTemp("", "hallmark-fleet-chip")
	if err != nil {
		return nil, fmt.Errorf("fleet chip: %w", err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "chip.json")
	if err := chip.Save(path); err != nil {
		return nil, fmt.Errorf("fleet chip: %w", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fleet chip: %w", err)
	}
	var base map[string]any
	if err := json.Unmarshal(data, &base); err != nil {
		return nil, fmt.Errorf("fleet chip: %w", err)
	}
	if _, ok := base["flash"].(map[string]any); !ok {
		return nil, errors.New("fleet chip: the saved state has no flash section")
	}
	if _, ok := base["protected_key_store"].(map[string]any); !ok {
		return nil, errors.New("fleet chip: the saved state has no protected key store")
	}
	return &ChipTemplate{base: base, opAlg: fl.op.ID()}, nil
}

// Chip makes device d's chip holding chain (DER, leaf first), not yet
// booted.
func (t *ChipTemplate) Chip(d *Onboardable, chain [][]byte) (*device.Device, error) {
	enrol, err := sigalg.MarshalPrivateKey(d.key)
	if err != nil {
		return nil, fmt.Errorf("device %d: %w", d.Index, err)
	}
	op, err := sigalg.MarshalPrivateKey(d.Operational)
	if err != nil {
		return nil, fmt.Errorf("device %d: %w", d.Index, err)
	}
	pems := make([]string, len(chain))
	for i, der := range chain {
		pems[i] = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	}
	bundle := ""
	if len(pems) > 1 {
		bundle = pems[len(pems)-1]
	}
	// A public serial that names the fleet device: "f1ee7" and its index.
	chipID := make([]byte, 16)
	copy(chipID, []byte{0xf1, 0xee, 0x70})
	binary.BigEndian.PutUint64(chipID[8:], d.Index)

	st := maps.Clone(t.base)
	st["chip_id"] = hex.EncodeToString(chipID)
	ks := maps.Clone(t.base["protected_key_store"].(map[string]any))
	ks["enrolment_key"], ks["operational_key"] = enrol, op
	st["protected_key_store"] = ks
	flash := maps.Clone(t.base["flash"].(map[string]any))
	flash["credentials"] = device.Credentials{CertificateChain: pems, TrustBundle: bundle, OperationalAlg: t.opAlg}
	st["flash"] = flash
	data, err := json.Marshal(st)
	clear(enrol)
	clear(op)
	if err != nil {
		return nil, fmt.Errorf("device %d: %w", d.Index, err)
	}
	chip, err := device.Unmarshal(data, nil)
	clear(data)
	if err != nil {
		return nil, fmt.Errorf("device %d: %w", d.Index, err)
	}
	return chip, nil
}
