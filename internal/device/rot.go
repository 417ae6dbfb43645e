package device

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/hallmark-iot/hallmark/internal/puf"
	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/tpm"
)

// HKDF info strings separate the keys a PUF-class chip derives from its one
// reconstructed seed.
const (
	pufEnrolmentInfo = "hallmark puf enrolment key v1"
	pufVaultInfo     = "hallmark puf key vault v1"
	vaultAAD         = "hallmark class key vault v1"
)

// Device is one simulated chip. It is not safe for concurrent use, as a
// chip on a programming socket is driven by one station thread.
type Device struct {
	st   state
	rand io.Reader
	chip *puf.Chip // the SRAM array of a puf-class chip, built on demand
	// running is the image the ROM verified and started; nil until Boot.
	running *runningImage
	tpm     *tpm.TPM // a tpm-class device's TPM, opened on first use (tpm.go)
}

// New makes a chip as it leaves the silicon vendor: fuses burned, flash
// empty. A puf-class chip's ROM enrols its PUF on first power-up, storing
// helper data; a device-class key, if any, is then kept sealed under a key
// only this chip's SRAM can reconstruct.
func New(cfg Config) (*Device, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	d := &Device{rand: cfg.Rand, st: state{Format: stateFormat, Class: cfg.Class, Algorithm: cfg.Algorithm}}
	d.st.Flash.Active = slotA
	chipID := make([]byte, 16)
	if _, err := io.ReadFull(cfg.Rand, chipID); err != nil {
		return nil, fmt.Errorf("new device: %w", err)
	}
	d.st.ChipID = hex.EncodeToString(chipID)
	for _, h := range cfg.RootKeyHashes {
		d.st.OTP.RootKeyHashes = append(d.st.OTP.RootKeyHashes, append(hexBytes(nil), h[:]...))
	}
	var err error
	switch cfg.Class {
	case ClassPUF:
		err = d.makeSRAM(cfg)
	case ClassKeygen, ClassInject:
		err = d.makeKeyStore(cfg)
	case ClassTPM:
		err = d.makeTPM(cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("new %s device: %w", cfg.Class, err)
	}
	return d, nil
}

func (d *Device) makeSRAM(cfg Config) error {
	seed := make([]byte, 32)
	if _, err := io.ReadFull(cfg.Rand, seed); err != nil {
		return err
	}
	d.st.SRAM = &sramState{CellSeed: seed, BitErrorRate: cfg.PUF.BitErrorRate, Bias: cfg.PUF.Bias, Cells: cfg.PUF.Cells}
	chip, err := d.sram()
	if err != nil {
		return err
	}
	pufSeed, helper, err := puf.EnrolChip(chip, puf.DefaultEnrolReads)
	if err != nil {
		return err
	}
	defer clear(pufSeed[:])
	if d.st.Flash.PUFHelper, err = helper.MarshalBinary(); err != nil {
		return err
	}
	if cfg.ClassKey == nil {
		return nil
	}
	classKey, err := sealing.MarshalPrivateKey(cfg.ClassKey)
	if err != nil {
		return err
	}
	defer clear(classKey)
	aead, err := vaultCipher(pufSeed[:])
	if err != nil {
		return err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := io.ReadFull(cfg.Rand, nonce); err != nil {
		return err
	}
	d.st.Flash.ClassKeyVault = aead.Seal(nonce, nonce, classKey, d.vaultAAD())
	return nil
}

func (d *Device) makeKeyStore(cfg Config) error {
	d.st.KeyStore = &keyStore{}
	if cfg.ClassKey != nil {
		classKey, err := sealing.MarshalPrivateKey(cfg.ClassKey)
		if err != nil {
			return err
		}
		d.st.KeyStore.ClassKey = classKey
	}
	if !cfg.EncryptedChannel {
		return nil
	}
	loader, err := makeLoader(cfg.Transport, cfg.Rand)
	if err != nil {
		return err
	}
	d.st.Loader = loader
	return nil
}

func (d *Device) vaultAAD() []byte { return []byte(vaultAAD + d.st.ChipID) }

func vaultCipher(pufSeed []byte) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, pufSeed, nil, pufVaultInfo, 32)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func (d *Device) sramConfig() (puf.Config, error) {
	s := d.st.SRAM
	cfg := puf.Config{BitErrorRate: s.BitErrorRate, Bias: s.Bias, Cells: s.Cells}
	if _, err := puf.NewChip([32]byte{}, cfg); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// sram powers up the simulated SRAM array; its reads are fresh noise each
// time.
func (d *Device) sram() (*puf.Chip, error) {
	if d.chip != nil {
		return d.chip, nil
	}
	cfg, err := d.sramConfig()
	if err != nil {
		return nil, err
	}
	chip, err := puf.NewChip([32]byte(d.st.SRAM.CellSeed), cfg)
	if err != nil {
		return nil, err
	}
	d.chip = chip
	return chip, nil
}

// reconstructPUF reads the SRAM once and reconstructs the chip's seed. The
// caller clears it.
func (d *Device) reconstructPUF() ([puf.SeedSize]byte, error) {
	chip, err := d.sram()
	if err != nil {
		return [puf.SeedSize]byte{}, err
	}
	helper, err := puf.ParseHelperData(d.st.Flash.PUFHelper)
	if err != nil {
		return [puf.SeedSize]byte{}, err
	}
	return puf.Reconstruct(chip.Read(), helper)
}

// classKey returns the device-class key, or nil if the chip has none.
func (d *Device) classKey() (*sealing.PrivateKey, error) {
	switch {
	case d.st.KeyStore != nil && d.st.KeyStore.ClassKey != nil:
		return sealing.ParsePrivateKey(d.st.KeyStore.ClassKey)
	case d.st.Flash.ClassKeyVault == nil:
		return nil, nil
	}
	seed, err := d.reconstructPUF()
	if err != nil {
		return nil, fmt.Errorf("open class-key vault: %w", err)
	}
	defer clear(seed[:])
	aead, err := vaultCipher(seed[:])
	if err != nil {
		return nil, err
	}
	vault := d.st.Flash.ClassKeyVault
	if len(vault) < aead.NonceSize() {
		return nil, fmt.Errorf("%w: class-key vault too short", ErrMalformedState)
	}
	raw, err := aead.Open(nil, vault[:aead.NonceSize()], vault[aead.NonceSize():], d.vaultAAD())
	if err != nil {
		return nil, fmt.Errorf("open class-key vault: %w", err)
	}
	defer clear(raw)
	return sealing.ParsePrivateKey(raw)
}

// pufEnrolmentContext is the HKDF info of a puf chip's enrolment key of
// generation gen. Generation 0 is the context of the first release,
// unchanged, so chips made before migrations existed keep their identity;
// later generations name the number and the suite, so every (generation,
// suite) gets an independent key from the one PUF seed.
func pufEnrolmentContext(gen uint32, suite sigalg.ID) string {
	if gen == 0 {
		return pufEnrolmentInfo
	}
	return fmt.Sprintf("%s generation %d %s", pufEnrolmentInfo, gen, suite)
}

// derivePUFKey derives the enrolment key of generation gen from a fresh
// SRAM reading.
func (d *Device) derivePUFKey(gen uint32, suite sigalg.Suite) (crypto.Signer, error) {
	seed, err := d.reconstructPUF()
	if err != nil {
		return nil, err
	}
	defer clear(seed[:])
	keySeed, err := hkdf.Key(sha256.New, seed[:], nil, pufEnrolmentContext(gen, suite.ID()), sigalg.SeedSize)
	if err != nil {
		return nil, err
	}
	defer clear(keySeed)
	return suite.DeriveKey(keySeed)
}

// enrolmentKey returns the key that proves the device's identity. A puf
// chip derives it now from a fresh SRAM reading; a keygen chip generates it
// in its key store the first time it is asked; an inject chip must have
// been programmed with one.
func (d *Device) enrolmentKey() (crypto.Signer, error) {
	suite, err := d.st.Algorithm.Suite()
	if err != nil {
		return nil, err
	}
	switch d.st.Class {
	case ClassPUF:
		return d.derivePUFKey(d.st.OTP.PUFGeneration, suite)
	case ClassTPM:
		return d.tpmEnrolmentKey()
	case ClassKeygen:
		if d.st.KeyStore.EnrolmentKey == nil {
			key, err := suite.GenerateKey(d.rand)
			if err != nil {
				return nil, fmt.Errorf("generate enrolment key: %w", err)
			}
			if d.st.KeyStore.EnrolmentKey, err = sigalg.MarshalPrivateKey(key); err != nil {
				return nil, err
			}
			return key, nil
		}
	}
	if d.st.KeyStore.EnrolmentKey == nil {
		return nil, ErrNoKey
	}
	return sigalg.ParsePrivateKey(d.st.KeyStore.EnrolmentKey)
}
