package firmwarecmd

import (
	"crypto"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/firmware"
)

// imageSource holds the flags that say where an image comes from: a
// payload and the header fields for a new image, or an existing image.
type imageSource struct {
	in, image, typ, version string
	counter                 uint32
	retire                  []uint
}

func (src *imageSource) bind(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&src.in, "in", "i", "", "payload `FILE` of a new image")
	cmd.Flags().StringVar(&src.image, "image", "", "existing image `FILE` instead of --in")
	cmd.Flags().StringVarP(&src.typ, "type", "t", "", "new image's type: ief or app")
	cmd.Flags().StringVar(&src.version, "version", "0.0.0", "new image's version, MAJOR.MINOR.PATCH")
	cmd.Flags().Uint32Var(&src.counter, "counter", 0, "new image's security counter (anti-rollback)")
	cmd.Flags().UintSliceVar(&src.retire, "retire-slot", nil, "root-key `SLOT` (0-3) a device retires once it confirmed the new image (repeatable; docs/firmware.md)")
}

// load builds a new image from the payload or reads the existing one.
func (src *imageSource) load(cmd *cobra.Command, s *cmdline.Streams) (*firmware.Image, error) {
	if (src.in == "") == (src.image == "") {
		return nil, cmdline.Usagef("give either --in PAYLOAD (a new image) or --image FILE (an existing one)")
	}
	if src.image != "" {
		for _, name := range []string{"type", "version", "counter", "retire-slot"} {
			if cmd.Flags().Changed(name) {
				return nil, cmdline.Usagef("--%s describes a new image; it cannot change an existing --image", name)
			}
		}
		return readImage(s, src.image)
	}
	meta, err := src.metadata()
	if err != nil {
		return nil, err
	}
	payload, err := s.ReadInput(src.in, firmware.MaxPayloadSize, "payload")
	if err != nil {
		return nil, err
	}
	return firmware.New(meta, payload)
}

// slotMask reads root-key slot numbers given with flag.
func slotMask(slots []uint, flag string) (firmware.SlotMask, error) {
	var m firmware.SlotMask
	for _, slot := range slots {
		if slot >= firmware.MaxRootSlots {
			return 0, cmdline.Usagef("%s %d: a device has root-key slots 0 to %d", flag, slot, firmware.MaxRootSlots-1)
		}
		m |= 1 << slot
	}
	return m, nil
}

func (src *imageSource) metadata() (firmware.Metadata, error) {
	if src.typ == "" {
		return firmware.Metadata{}, cmdline.Usagef("--type is required for a new image (ief or app)")
	}
	typ, err := firmware.ParseImageType(src.typ)
	if err != nil {
		return firmware.Metadata{}, cmdline.Usage(err)
	}
	version, err := firmware.ParseVersion(src.version)
	if err != nil {
		return firmware.Metadata{}, cmdline.Usage(err)
	}
	retire, err := slotMask(src.retire, "--retire-slot")
	if err != nil {
		return firmware.Metadata{}, err
	}
	return firmware.Metadata{Type: typ, Version: version, SecurityCounter: src.counter, RetireSlots: retire}, nil
}
func newFirmwareEncryptCmd(s *cmdline.Streams) *cobra.Command {
	var src imageSource
	var to, out string
	var force bool
	cmd := &cobra.Command{
		Use:   "encrypt (--in PAYLOAD --type TYPE [--version V] [--counter N] | --image UNSIGNED) --to CLASS.pub [-o FILE]",
		Short: "Encrypt a payload to a device-class key, making an unsigned image",
		Long: `Encrypt a payload to a device-class public key and write the unsigned image,
for the vendor's signing step. The header (type, version, counter, recipient)
is bound to the ciphertext, so signing cannot relabel it. An existing image
can be encrypted only while it is unsigned, since signatures cover the header.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to == "" {
				return cmdline.Usagef("--to CLASS.pub is required (the device-class public key)")
			}
			if cmdline.StdinCount(src.in, src.image, to) > 1 {
				return cmdline.Usagef("only one of the inputs can be standard input")
			}
			img, err := src.load(cmd, s)
			if err != nil {
				return err
			}
			class, err := s.ReadClassPublicKey(to)
			if err != nil {
				return err
			}
			if err := img.Encrypt(class); err != nil {
				return err
			}
			return writeImage(s, out, img, force)
		},
	}
	src.bind(cmd)
	cmd.Flags().StringVar(&to, "to", "", "device-class public key `FILE`")
	cmd.Flags().StringVarP(&out, "out", "o", "-", "image `FILE`")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing output file")
	return cmd
}
func newFirmwareSignCmd(s *cmdline.Streams) *cobra.Command {
	var src imageSource
	var keyFiles, keyNames []string
	var store cmdline.KeyStoreFlags
	var encryptTo, out string
	var force bool
	cmd := &cobra.Command{
		Use:   "sign (--in PAYLOAD --type TYPE [--version V] [--counter N] | --image FILE) (--key KEY... | --keystore URI --key-name NAME...) [--encrypt-to CLASS.pub] [-o FILE]",
		Short: "Sign a new or existing image with one or more keys",
		Long: `Sign an image: a new one built from a payload, or an existing one, which keeps
its signatures and gains the new ones (how a second signing service adds its
ML-DSA signature to an ECDSA-signed image). --encrypt-to encrypts the payload
first; it needs an image that is not signed yet.

Signing keys are PEM files (--key) or keys in a key store (--keystore with
--key-name), for instance a vendor root held in an HSM:
--keystore 'pkcs11:token=LABEL?module-path=/path/module.so&pin-source=file:/path/pin'.
Both kinds may sign one image, up to ` + fmt.Sprint(firmware.MaxSignatures) + ` signatures in all, PEM keys first.
A key store's passphrase, or a token's PIN when its URI has no pin-source
and $HALLMARK_PKCS11_PIN is unset, is read from --passphrase-file or
$` + cmdline.KeyStorePassphraseEnv + `. "hallmark firmware root-key" creates such a key and exports
its public key for the devices' and the product's firmware policy.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (store.Keystore == "") != (len(keyNames) == 0) {
				return cmdline.Usagef("--keystore URI and --key-name NAME go together")
			}
			if len(keyFiles)+len(keyNames) == 0 {
				return cmdline.Usagef("--key FILE or --keystore URI --key-name NAME is required (repeat them for several signatures)")
			}
			if cmdline.StdinCount(append([]string{src.in, src.image, encryptTo, store.PassFile}, keyFiles...)...) > 1 {
				return cmdline.Usagef("only one of the inputs can be standard input")
			}
			img, err := src.load(cmd, s)
			if err != nil {
				return err
			}
			signers, err := readSigners(s, keyFiles)
			if err != nil {
				return err
			}
			if len(keyNames) > 0 {
				m, err := store.Open(cmd.Context(), s, false)
				if err != nil {
					return err
				}
				defer m.Close()
				for _, name := range keyNames {
					signer, err := m.Signer(cmd.Context(), name)
					if err != nil {
						return fmt.Errorf("sign image: key %s: %w", name, err)
					}
					signers = append(signers, signer)
				}
			}
			if encryptTo != "" {
				class, err := s.ReadClassPublicKey(encryptTo)
				if err != nil {
					return err
				}
				if err := img.Encrypt(class); err != nil {
					return err
				}
			}
			for _, signer := range signers {
				if err := img.Sign(signer); err != nil {
					return err
				}
			}
			return writeImage(s, out, img, force)
		},
	}
	src.bind(cmd)
	cmd.Flags().StringArrayVarP(&keyFiles, "key", "k", nil, "signing private key PEM `FILE` (repeatable)")
	store.BindStore(cmd)
	cmd.Flags().StringArrayVar(&keyNames, "key-name", nil, "signing key `NAME` in --keystore (repeatable)")
	cmd.Flags().StringVar(&encryptTo, "encrypt-to", "", "encrypt the payload to this device-class public key `FILE` first")
	cmd.Flags().StringVarP(&out, "out", "o", "-", "image `FILE`")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing output file")
	return cmd
}
func readSigners(s *cmdline.Streams, paths []string) ([]crypto.Signer, error) {
	var signers []crypto.Signer
	for _, p := range paths {
		key, err := s.ReadKey(p)
		if err != nil {
			return nil, err
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("sign image: %s holds a public key; signing needs the private key", cmdline.DisplayPath(p))
		}
		signers = append(signers, signer)
	}
	return signers, nil
}
