package firmwarecmd

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/firmware"
)

func newFirmwareVerifyCmd(s *cmdline.Streams) *cobra.Command {
	var v verifyFlags
	cmd := &cobra.Command{
		Use:   "verify [--image FILE] --root KEY [--root KEY...] [--min-counter N] [--class-key KEY] [--payload-out FILE]",
		Short: "Make the boot ROM's checks: root signatures, anti-rollback, decryption",
		Long: `Verify an image as a device's boot ROM does, in its order: the image is well
formed; every root key (--root public key file, or --root-id as the 64-hex
SHA-256 of its DER SubjectPublicKeyInfo, as OTP stores it) that is not
retired (--retired-slot) has signed it; its
security counter is not below --min-counter (the device's OTP counter); an
encrypted payload opens with --class-key. Prints a summary, or fails with one
line naming the reason. --payload-out writes the plaintext payload (mode 0600
when it was encrypted) only when every check passed.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return v.run(s) },
	}
	cmd.Flags().StringVar(&v.image, "image", "-", "image `FILE`")
	cmd.Flags().StringArrayVar(&v.roots, "root", nil, "root public key `FILE` the device trusts (repeatable; all must have signed)")
	cmd.Flags().StringArrayVar(&v.rootIDs, "root-id", nil, "root key as the `HEX` SHA-256 of its SPKI (repeatable)")
	cmd.Flags().Uint32Var(&v.minCounter, "min-counter", 0, "the device's anti-rollback counter")
	cmd.Flags().UintSliceVar(&v.retired, "retired-slot", nil, "root-key `SLOT` whose revocation bit the device has burned, counting --root and --root-id in order from 0 (repeatable)")
	cmd.Flags().StringVar(&v.classKey, "class-key", "", "device-class private key `FILE`, for encrypted images")
	cmd.Flags().StringVar(&v.payloadOut, "payload-out", "", "write the verified plaintext payload to `FILE`")
	cmd.Flags().BoolVar(&v.force, "force", false, "replace an existing payload file")
	return cmd
}

type verifyFlags struct {
	image, classKey, payloadOut string
	roots, rootIDs              []string
	retired                     []uint
	minCounter                  uint32
	force                       bool
}

func (v *verifyFlags) run(s *cmdline.Streams) error {
	if len(v.roots)+len(v.rootIDs) == 0 {
		return cmdline.Usagef("--root KEY or --root-id HEX is required (the device's trusted root keys)")
	}
	if cmdline.StdinCount(append([]string{v.image, v.classKey}, v.roots...)...) > 1 {
		return cmdline.Usagef("only one of the inputs can be standard input")
	}
	policy := firmware.Policy{MinSecurityCounter: v.minCounter}
	var err error
	if policy.Retired, err = slotMask(v.retired, "--retired-slot"); err != nil {
		return err
	}
	if policy.RootKeyHashes, err = s.RootHashes(v.roots, v.rootIDs); err != nil {
		return err
	}
	if v.classKey != "" {
		if policy.ClassKey, err = s.ReadClassPrivateKey(v.classKey); err != nil {
			return err
		}
	}
	data, err := s.ReadInput(v.image, firmware.MaxImageSize, "image")
	if err != nil {
		return err
	}
	verified, err := firmware.VerifyBytes(data, policy)
	if err != nil {
		return fmt.Errorf("verify image: %w", err)
	}
	summary := s.Out
	if v.payloadOut != "" {
		perm := fs.FileMode(0o644)
		if verified.Header.Encryption != nil {
			perm = 0o600
		}
		if err := s.WriteOutput(v.payloadOut, verified.Payload, perm, v.force); err != nil {
			return err
		}
		if cmdline.IsStdio(v.payloadOut) {
			summary = s.Err
		}
	}
	return printVerified(summary, verified)
}
func printVerified(w io.Writer, v *firmware.Verified) error {
	h := v.Header
	how := "in the clear"
	if h.Encryption != nil {
		how = "decrypted with the " + string(h.Encryption.KEM) + " class key"
	}
	digest := sha256.Sum256(v.Payload)
	var b strings.Builder
	fmt.Fprintf(&b, "verified: %s %s, security counter %d\n", h.Type, h.Version, h.SecurityCounter)
	fmt.Fprintf(&b, "payload:  %d bytes %s, sha256 %x\n", len(v.Payload), how, digest)
	for _, root := range v.Roots {
		fmt.Fprintf(&b, "root:     %s\n", root)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
