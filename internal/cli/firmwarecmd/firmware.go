// Package firmwarecmd owns "hallmark firmware": device-class keys
// (classkey.go), building, encrypting and signing images (sign.go),
// verifying them as a device's ROM would (verify.go), inspecting them
// without keys (inspect.go), and signing roots held in a key store or HSM
// (rootkey.go).
package firmwarecmd

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/firmware"
)

// New returns the firmware command group.
func New(s *cmdline.Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "firmware",
		Short: "Build, encrypt, sign, inspect and verify firmware images",
		Long: `A firmware image (.hmfw) is a header, a payload and signatures over the header,
which binds the payload by its SHA-256. The payload may be encrypted to a
device-class key first (encrypt, then sign), so that whoever programs the
devices handles only ciphertext. verify makes exactly the boot ROM's checks:
signatures by every root key, anti-rollback counter, then decryption.
The byte layout is in docs/firmware.md. Every FILE may be "-" for standard
input or output.`,
	}
	cmd.AddCommand(newFirmwareClassKeyCmd(s), newFirmwareEncryptCmd(s), newFirmwareSignCmd(s),
		newFirmwareVerifyCmd(s), newFirmwareInspectCmd(s), newFirmwareRootKeyCmd(s))
	return cmd
}

// readImage reads and parses an image file.
func readImage(s *cmdline.Streams, path string) (*firmware.Image, error) {
	data, err := s.ReadInput(path, firmware.MaxImageSize, "image")
	if err != nil {
		return nil, err
	}
	img, err := firmware.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("read image %s: %w", cmdline.DisplayPath(path), err)
	}
	return img, nil
}

func writeImage(s *cmdline.Streams, path string, img *firmware.Image, force bool) error {
	data, err := img.MarshalBinary()
	if err != nil {
		return err
	}
	return s.WriteOutput(path, data, 0o644, force)
}
