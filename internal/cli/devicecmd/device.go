// Package devicecmd owns "hallmark device": the simulated microcontroller
// as its state file (new, program, boot, enrol, inject, ief-payload) and
// the device's side of the platform: onboarding and credentials over TLS
// (onboard.go), renewing on its own (run.go) and publishing to the cloud
// broker (connect.go).
package devicecmd

import (
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/puf"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// New returns the device command group.
func New(s *cmdline.Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "device",
		Short: "Simulate a microcontroller: make it, program it, boot it, enrol it",
		Long: `A simulated device is a JSON state file holding what the silicon holds: OTP
fuses (root-key hashes, anti-rollback counter), flash (firmware image, PUF
helper data) and, for keygen and inject chips, the protected key store.`,
	}
	cmd.AddCommand(newDeviceNewCmd(s), newDeviceProgramCmd(s), newDeviceBootCmd(s),
		newDeviceEnrolCmd(s), newDeviceInjectCmd(s), newDeviceIEFCmd(s), newDeviceOnboardCmd(s),
		newDeviceCredentialsCmd(s), newDeviceConnectCmd(s),
		newDeviceStatusCmd(s), newDeviceRunCmd(s), newDeviceUpdateCmd(s), newDeviceTPMCmd(s))
	cmd.AddCommand(newDeviceLocksCmd(s), newDeviceLockCmd(s), newDeviceDebugReadCmd(s))
	return cmd
}

func newDeviceNewCmd(s *cmdline.Streams) *cobra.Command {
	var class, alg, out, classKey, tpmAddr, transport string
	var roots []string
	var channel, force bool
	var ber float64
	cmd := &cobra.Command{
		Use:   "new --class puf|keygen|inject --alg SUITE --root ROOT.pub -o STATE",
		Short: "Make a chip as it leaves the silicon vendor",
		Long: `Make a chip as it leaves the silicon vendor: fuses burned, flash empty.

An inject-class chip cannot make its own key. With --channel (or --transport)
its bootloader offers an encrypted programming channel, and the station's key
store wraps the key it generates to the chip's per-chip transport key. The
channel's scheme is fixed in the chip, and the station uses whichever it
offers:

  x-wing      HPKE to ML-KEM-768 + X25519 (the default): post-quantum; the key
              is wrapped in software, so it is in the station's memory.
  p256-ecdh   P-256 ECDH + AES key wrap (RFC 5649): classical only, but a
              PKCS #11 key store computes it inside the HSM, so the key never
              leaves the token in the clear.
  ml-kem-768, x25519   HPKE with that KEM alone.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := device.ParseClass(class)
			if err != nil {
				return cmdline.Usage(err)
			}
			suite, err := sigalg.Lookup(alg)
			if err != nil {
				return cmdline.Usage(err)
			}
			if out == "" || out == cmdline.Stdio {
				return cmdline.Usagef("-o STATE is required: the device lives in a file")
			}
			hashes, err := s.RequiredRoots(roots)
			if err != nil {
				return err
			}
			ck, err := s.OptionalClassKey(classKey)
			if err != nil {
				return err
			}
			var tr device.Transport
			if transport != "" {
				if c != device.ClassInject {
					return cmdline.Usagef("--transport is for inject-class chips: a %s chip makes its own key", c)
				}
				if tr, err = device.ParseTransport(transport); err != nil {
					return cmdline.Usage(err)
				}
				channel = true
			}
			pufCfg := puf.DefaultConfig()
			pufCfg.BitErrorRate = ber
			dev, err := device.New(device.Config{Class: c, Algorithm: suite.ID(), RootKeyHashes: hashes,
				EncryptedChannel: channel, Transport: tr, ClassKey: ck, PUF: pufCfg, TPM: tpmAddr})
			if err != nil {
				return err
			}
			return saveDevice(dev, out, force)
		},
	}
	cmd.Flags().StringVar(&class, "class", "", "root of trust: puf, keygen, inject or tpm")
	bindTPM(cmd, &tpmAddr)
	cmd.Flags().StringVarP(&alg, "alg", "a", "", "enrolment key suite")
	cmd.Flags().StringArrayVar(&roots, "root", nil, "vendor root public key `FILE` to burn into OTP (repeat for hybrid)")
	cmd.Flags().BoolVar(&channel, "channel", false, "inject class: the bootloader offers an encrypted programming channel")
	cmd.Flags().StringVar(&transport, "transport", "", "inject class: the channel's `SCHEME`, x-wing (default), p256-ecdh, ml-kem-768 or x25519 (implies --channel)")
	cmd.Flags().StringVar(&classKey, "class-key", "", "device-class KEM private key `FILE` for encrypted firmware")
	cmd.Flags().Float64Var(&ber, "ber", puf.DefaultBitErrorRate, "puf class: SRAM bit error rate per read")
	cmd.Flags().StringVarP(&out, "out", "o", "", "device state `FILE`")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing state file")
	return cmd
}

func saveDevice(dev *device.Device, path string, force bool) error {
	if !force {
		if _, err := device.Load(path, nil); err == nil {
			return fmt.Errorf("write %s: file exists (use --force to replace it)", path)
		}
	}
	return dev.Save(path)
}

func bindState(cmd *cobra.Command, path *string) {
	cmd.Flags().StringVar(path, "state", "", "device state `FILE`")
}

func loadDevice(path string) (*device.Device, error) {
	if path == "" {
		return nil, cmdline.Usagef("--state FILE is required")
	}
	return device.Load(path, nil)
}

func newDeviceProgramCmd(s *cmdline.Streams) *cobra.Command {
	var statePath, imagePath string
	cmd := &cobra.Command{
		Use:   "program --state STATE --image IMAGE",
		Short: "Write a firmware image into flash (the ROM checks it at boot, not now)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			dev, err := loadDevice(statePath)
			if err != nil {
				return err
			}
			img, err := s.ReadInput(imagePath, cmdline.MaxImageFile, "image")
			if err != nil {
				return err
			}
			if err := dev.Program(img); err != nil {
				return err
			}
			return dev.Save(statePath)
		},
	}
	bindState(cmd, &statePath)
	cmd.Flags().StringVar(&imagePath, "image", "", "firmware image `FILE`")
	return cmd
}

func newDeviceBootCmd(s *cmdline.Streams) *cobra.Command {
	var statePath string
	cmd := &cobra.Command{
		Use:   "boot --state STATE",
		Short: "Power the device up: the ROM verifies the image in flash and starts it",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			dev, err := loadDevice(statePath)
			if err != nil {
				return err
			}
			if err := dev.Boot(); err != nil {
				return err
			}
			if err := dev.Save(statePath); err != nil { // the counter may have advanced
				return err
			}
			_, err = fmt.Fprintf(s.Out, "booted: image verified and started; anti-rollback counter %d\n", dev.SecurityCounter())
			return err
		},
	}
	bindState(cmd, &statePath)
	return cmd
}

// enrolmentJSON is what `device enrol` prints: public data only.
type enrolmentJSON struct {
	Identity  identity.ID `json:"identity"`
	Algorithm sigalg.ID   `json:"algorithm"`
	Class     string      `json:"root_of_trust"`
	Injection string      `json:"injection"`
	PublicKey string      `json:"public_key"`
	Nonce     string      `json:"nonce"`
	Proof     string      `json:"proof"`
}

func newDeviceEnrolCmd(s *cmdline.Streams) *cobra.Command {
	var statePath, nonceHex string
	cmd := &cobra.Command{
		Use:   "enrol --state STATE [--nonce HEX]",
		Short: "Boot the initial enrolment firmware and print identity, public key and proof",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			dev, err := loadDevice(statePath)
			if err != nil {
				return err
			}
			nonce := make([]byte, 32)
			if nonceHex != "" {
				if nonce, err = hex.DecodeString(nonceHex); err != nil || len(nonce) == 0 {
					return cmdline.Usagef("--nonce must be hexadecimal bytes")
				}
			} else if _, err := rand.Read(nonce); err != nil {
				return err
			}
			if err := dev.Boot(); err != nil {
				return err
			}
			enr, err := dev.Enrol(nonce)
			if err != nil {
				return err
			}
			if err := dev.Save(statePath); err != nil { // a keygen chip made its key
				return err
			}
			b64 := base64.StdEncoding.EncodeToString
			out, _ := json.MarshalIndent(enrolmentJSON{Identity: enr.Identity, Algorithm: enr.Algorithm,
				Class: string(enr.Class), Injection: enr.Injection, PublicKey: b64(enr.PublicKey),
				Nonce: b64(enr.Nonce), Proof: b64(enr.Proof)}, "", "  ")
			_, err = fmt.Fprintf(s.Out, "%s\n", out)
			return err
		},
	}
	bindState(cmd, &statePath)
	cmd.Flags().StringVar(&nonceHex, "nonce", "", "station nonce in hex (default: 32 random bytes)")
	return cmd
}

func newDeviceInjectCmd(s *cmdline.Streams) *cobra.Command {
	var statePath, keyPath string
	cmd := &cobra.Command{
		Use:   "inject --state STATE --key KEY",
		Short: "Program the enrolment key of an inject-class chip (sealed to its transport key when it has one)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			dev, err := loadDevice(statePath)
			if err != nil {
				return err
			}
			key, err := s.ReadKey(keyPath)
			if err != nil {
				return err
			}
			signer, ok := key.(crypto.Signer)
			if !ok {
				return fmt.Errorf("inject: %s holds a public key; the chip needs the private key", keyPath)
			}
			der, err := sigalg.MarshalPrivateKey(signer)
			if err != nil {
				return err
			}
			defer clear(der)
			blob, path := der, "in the clear (the chip offers no encrypted channel)"
			if dev.HasChannel() {
				wrapper, err := dev.ChannelWrapper()
				if err != nil {
					return err
				}
				if blob, err = wrapper.Wrap(der); err != nil {
					return err
				}
				path = fmt.Sprintf("wrapped to the chip's %s transport key", dev.Transport())
			}
			if err := dev.InjectKey(blob, dev.HasChannel()); err != nil {
				return err
			}
			if err := dev.Save(statePath); err != nil {
				return err
			}
			_, err = fmt.Fprintf(s.Out, "injected %s key %s\n", dev.Algorithm(), path)
			return err
		},
	}
	bindState(cmd, &statePath)
	cmd.Flags().StringVarP(&keyPath, "key", "k", "", "enrolment private key `FILE` (PKCS #8 PEM)")
	return cmd
}

func newDeviceIEFCmd(s *cmdline.Streams) *cobra.Command {
	var out string
	var force bool
	cmd := &cobra.Command{
		Use:   "ief-payload -o FILE",
		Short: "Write the payload of the initial enrolment firmware, for the vendor to sign",
		Long: `Write the payload of the initial enrolment firmware. Sign it as an IEF image
with the vendor root key:

  hallmark device ief-payload -o ief.bin
  hallmark firmware sign --type ief --in ief.bin --key vendor.pem -o ief.hmfw`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return s.WriteOutput(out, device.IEFPayload(), 0o644, force)
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "-", "payload `FILE`")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing file")
	return cmd
}
