package cli

import (
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

func newFirmwareCmd(s *streams) *cobra.Command {
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
		newFirmwareVerifyCmd(s), newFirmwareInspectCmd(s))
	return cmd
}

func newFirmwareClassKeyCmd(s *streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "class-key",
		Short: "Make and show device-class keys, the KEM keys images are encrypted to",
		Long: `A device-class key is a KEM key pair (HPKE, ` + strings.Join(sealing.Names(), ", ") + `).
Its private half goes into every device of the class; images are encrypted to
its public half. Keys are PEM "` + sealing.PEMPrivateKey + `" and
"` + sealing.PEMPublicKey + `".`,
	}
	cmd.AddCommand(newClassKeyGenerateCmd(s), newClassKeyPublicCmd(s), newClassKeyFingerprintCmd(s))
	return cmd
}

func newClassKeyGenerateCmd(s *streams) *cobra.Command {
	var kemName, out, pubOut string
	var force bool
	cmd := &cobra.Command{
		Use:   "generate [--kem KEM] -o FILE [--pub-out FILE]",
		Short: "Generate a device-class key pair",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			kem, err := sealing.Lookup(kemName)
			if err != nil {
				return usageError{err}
			}
			if isStdio(out) && isStdio(pubOut) && pubOut != "" {
				return usagef("--out and --pub-out cannot both be standard output")
			}
			key, err := sealing.GenerateKey(kem)
			if err != nil {
				return err
			}
			privPEM, err := sealing.EncodePrivateKeyPEM(key)
			if err != nil {
				return err
			}
			outputs := []fileOutput{{out, privPEM, 0o600}}
			if pubOut != "" {
				outputs = append(outputs, fileOutput{pubOut, sealing.EncodePublicKeyPEM(key.Public()), 0o644})
			}
			return s.writeOutputs(outputs, force)
		},
	}
	cmd.Flags().StringVar(&kemName, "kem", string(sealing.DefaultKEM), "KEM: "+strings.Join(sealing.Names(), ", "))
	cmd.Flags().StringVarP(&out, "out", "o", "-", "private key PEM `FILE` (written with mode 0600)")
	cmd.Flags().StringVar(&pubOut, "pub-out", "", "also write the public key PEM to `FILE`")
	cmd.Flags().BoolVar(&force, "force", false, "replace existing output files")
	return cmd
}

func newClassKeyPublicCmd(s *streams) *cobra.Command {
	var out string
	var force bool
	cmd := &cobra.Command{
		Use:   "public [KEY]",
		Short: "Print the public key PEM of a device-class key",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			pub, err := s.readClassPublicKey(argOrStdin(args))
			if err != nil {
				return err
			}
			return s.writeOutput(out, sealing.EncodePublicKeyPEM(pub), 0o644, force)
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "-", "public key PEM `FILE`")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing output file")
	return cmd
}

func newClassKeyFingerprintCmd(s *streams) *cobra.Command {
	return &cobra.Command{
		Use:   "fingerprint [KEY]",
		Short: "Print the SHA-256 fingerprint that names a class key in image headers",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			pub, err := s.readClassPublicKey(argOrStdin(args))
			if err != nil {
				return err
			}
			fp := pub.Fingerprint()
			_, err = fmt.Fprintf(s.out, "%x  %s\n", fp, pub.KEM())
			return err
		},
	}
}

// imageSource holds the flags that say where an image comes from: a
// payload and the header fields for a new image, or an existing image.
type imageSource struct {
	in, image, typ, version string
	counter                 uint32
}

func (src *imageSource) bind(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&src.in, "in", "i", "", "payload `FILE` of a new image")
	cmd.Flags().StringVar(&src.image, "image", "", "existing image `FILE` instead of --in")
	cmd.Flags().StringVarP(&src.typ, "type", "t", "", "new image's type: ief or app")
	cmd.Flags().StringVar(&src.version, "version", "0.0.0", "new image's version, MAJOR.MINOR.PATCH")
	cmd.Flags().Uint32Var(&src.counter, "counter", 0, "new image's security counter (anti-rollback)")
}

// load builds a new image from the payload or reads the existing one.
func (src *imageSource) load(cmd *cobra.Command, s *streams) (*firmware.Image, error) {
	if (src.in == "") == (src.image == "") {
		return nil, usagef("give either --in PAYLOAD (a new image) or --image FILE (an existing one)")
	}
	if src.image != "" {
		for _, name := range []string{"type", "version", "counter"} {
			if cmd.Flags().Changed(name) {
				return nil, usagef("--%s describes a new image; it cannot change an existing --image", name)
			}
		}
		return s.readImage(src.image)
	}
	meta, err := src.metadata()
	if err != nil {
		return nil, err
	}
	payload, err := s.readInput(src.in, firmware.MaxPayloadSize, "payload")
	if err != nil {
		return nil, err
	}
	return firmware.New(meta, payload)
}

func (src *imageSource) metadata() (firmware.Metadata, error) {
	if src.typ == "" {
		return firmware.Metadata{}, usagef("--type is required for a new image (ief or app)")
	}
	typ, err := firmware.ParseImageType(src.typ)
	if err != nil {
		return firmware.Metadata{}, usageError{err}
	}
	version, err := firmware.ParseVersion(src.version)
	if err != nil {
		return firmware.Metadata{}, usageError{err}
	}
	return firmware.Metadata{Type: typ, Version: version, SecurityCounter: src.counter}, nil
}

func newFirmwareEncryptCmd(s *streams) *cobra.Command {
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
				return usagef("--to CLASS.pub is required (the device-class public key)")
			}
			if stdinCount(src.in, src.image, to) > 1 {
				return usagef("only one of the inputs can be standard input")
			}
			img, err := src.load(cmd, s)
			if err != nil {
				return err
			}
			class, err := s.readClassPublicKey(to)
			if err != nil {
				return err
			}
			if err := img.Encrypt(class); err != nil {
				return err
			}
			return s.writeImage(out, img, force)
		},
	}
	src.bind(cmd)
	cmd.Flags().StringVar(&to, "to", "", "device-class public key `FILE`")
	cmd.Flags().StringVarP(&out, "out", "o", "-", "image `FILE`")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing output file")
	return cmd
}

func newFirmwareSignCmd(s *streams) *cobra.Command {
	var src imageSource
	var keys []string
	var encryptTo, out string
	var force bool
	cmd := &cobra.Command{
		Use:   "sign (--in PAYLOAD --type TYPE [--version V] [--counter N] | --image FILE) --key KEY [--key KEY...] [--encrypt-to CLASS.pub] [-o FILE]",
		Short: "Sign a new or existing image with one or more keys",
		Long: `Sign an image: a new one built from a payload, or an existing one, which keeps
its signatures and gains the new ones (how a second signing service adds its
ML-DSA signature to an ECDSA-signed image). --encrypt-to encrypts the payload
first; it needs an image that is not signed yet.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(keys) == 0 {
				return usagef("--key FILE is required (repeat it for several signatures)")
			}
			if stdinCount(append([]string{src.in, src.image, encryptTo}, keys...)...) > 1 {
				return usagef("only one of the inputs can be standard input")
			}
			img, err := src.load(cmd, s)
			if err != nil {
				return err
			}
			signers, err := s.readSigners(keys)
			if err != nil {
				return err
			}
			if encryptTo != "" {
				class, err := s.readClassPublicKey(encryptTo)
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
			return s.writeImage(out, img, force)
		},
	}
	src.bind(cmd)
	cmd.Flags().StringArrayVarP(&keys, "key", "k", nil, "signing private key PEM `FILE` (repeatable)")
	cmd.Flags().StringVar(&encryptTo, "encrypt-to", "", "encrypt the payload to this device-class public key `FILE` first")
	cmd.Flags().StringVarP(&out, "out", "o", "-", "image `FILE`")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing output file")
	return cmd
}

func newFirmwareVerifyCmd(s *streams) *cobra.Command {
	var v verifyFlags
	cmd := &cobra.Command{
		Use:   "verify [--image FILE] --root KEY [--root KEY...] [--min-counter N] [--class-key KEY] [--payload-out FILE]",
		Short: "Make the boot ROM's checks: root signatures, anti-rollback, decryption",
		Long: `Verify an image as a device's boot ROM does, in its order: the image is well
formed; every root key (--root public key file, or --root-id as the 64-hex
SHA-256 of its DER SubjectPublicKeyInfo, as OTP stores it) has signed it; its
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
	cmd.Flags().StringVar(&v.classKey, "class-key", "", "device-class private key `FILE`, for encrypted images")
	cmd.Flags().StringVar(&v.payloadOut, "payload-out", "", "write the verified plaintext payload to `FILE`")
	cmd.Flags().BoolVar(&v.force, "force", false, "replace an existing payload file")
	return cmd
}

type verifyFlags struct {
	image, classKey, payloadOut string
	roots, rootIDs              []string
	minCounter                  uint32
	force                       bool
}

func (v *verifyFlags) run(s *streams) error {
	if len(v.roots)+len(v.rootIDs) == 0 {
		return usagef("--root KEY or --root-id HEX is required (the device's trusted root keys)")
	}
	if stdinCount(append([]string{v.image, v.classKey}, v.roots...)...) > 1 {
		return usagef("only one of the inputs can be standard input")
	}
	policy := firmware.Policy{MinSecurityCounter: v.minCounter}
	var err error
	if policy.RootKeyHashes, err = s.firmwareRoots(v.roots, v.rootIDs); err != nil {
		return err
	}
	if v.classKey != "" {
		if policy.ClassKey, err = s.readClassPrivateKey(v.classKey); err != nil {
			return err
		}
	}
	data, err := s.readInput(v.image, firmware.MaxImageSize, "image")
	if err != nil {
		return err
	}
	verified, err := firmware.VerifyBytes(data, policy)
	if err != nil {
		return fmt.Errorf("verify image: %w", err)
	}
	summary := s.out
	if v.payloadOut != "" {
		perm := fs.FileMode(0o644)
		if verified.Header.Encryption != nil {
			perm = 0o600
		}
		if err := s.writeOutput(v.payloadOut, verified.Payload, perm, v.force); err != nil {
			return err
		}
		if isStdio(v.payloadOut) {
			summary = s.err
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

func newFirmwareInspectCmd(s *streams) *cobra.Command {
	var image string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect [--image FILE] [--json]",
		Short: "Print an image's header and signatures without checking them",
		Long: `Print an image's header and signatures. The image must be well formed (its
payload matches the header's SHA-256), but no key is needed and no signature
is verified: use verify for that. A signer is shown as the SHA-256 of its DER
SubjectPublicKeyInfo, as a device's OTP stores a root key.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			img, err := s.readImage(image)
			if err != nil {
				return err
			}
			report := describeImage(img)
			if asJSON {
				enc := json.NewEncoder(s.out)
				enc.SetIndent("", "  ")
				return enc.Encode(report)
			}
			return report.print(s.out)
		},
	}
	cmd.Flags().StringVar(&image, "image", "-", "image `FILE`")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// imageReport is what inspect prints; its JSON field names are stable.
type imageReport struct {
	Format          int               `json:"format"`
	Type            string            `json:"type"`
	Version         string            `json:"version"`
	SecurityCounter uint32            `json:"security_counter"`
	PayloadSize     uint32            `json:"payload_size"`
	PayloadSHA256   string            `json:"payload_sha256"`
	Encryption      *encryptionReport `json:"encryption,omitempty"`
	Signatures      []signatureReport `json:"signatures"`
}

type encryptionReport struct {
	KEM               sealing.KEM `json:"kem"`
	Recipient         string      `json:"recipient"`
	EncapsulationSize int         `json:"encapsulation_size"`
}

type signatureReport struct {
	Suite  sigalg.ID   `json:"suite"`
	Signer identity.ID `json:"signer"`
	Size   int         `json:"size"`
}

func describeImage(img *firmware.Image) imageReport {
	h := img.Header()
	r := imageReport{
		Format: firmware.FormatVersion, Type: h.Type.String(), Version: h.Version.String(),
		SecurityCounter: h.SecurityCounter, PayloadSize: h.PayloadSize,
		PayloadSHA256: hex.EncodeToString(h.PayloadDigest[:]), Signatures: []signatureReport{},
	}
	if e := h.Encryption; e != nil {
		r.Encryption = &encryptionReport{KEM: e.KEM, Recipient: hex.EncodeToString(e.Recipient[:]), EncapsulationSize: len(e.Encapsulation)}
	}
	for _, sig := range img.Signatures() {
		r.Signatures = append(r.Signatures, signatureReport{Suite: sig.Suite, Signer: sig.Signer(), Size: len(sig.Value)})
	}
	return r
}

func (r imageReport) print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "format:\t%s v%d\n", firmware.Magic, r.Format)
	fmt.Fprintf(tw, "type:\t%s\n", r.Type)
	fmt.Fprintf(tw, "version:\t%s\n", r.Version)
	fmt.Fprintf(tw, "security counter:\t%d\n", r.SecurityCounter)
	fmt.Fprintf(tw, "payload:\t%d bytes, sha256 %s\n", r.PayloadSize, r.PayloadSHA256)
	if e := r.Encryption; e != nil {
		fmt.Fprintf(tw, "encrypted:\t%s, to class key %s\n", e.KEM, e.Recipient)
	} else {
		fmt.Fprintf(tw, "encrypted:\tno\n")
	}
	fmt.Fprintf(tw, "signatures:\t%d\n", len(r.Signatures))
	if err := tw.Flush(); err != nil {
		return err
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, sig := range r.Signatures {
		fmt.Fprintf(tw, "  %s\t%s\t%d bytes\n", sig.Suite, sig.Signer, sig.Size)
	}
	return tw.Flush()
}

// readImage reads and parses an image file.
func (s *streams) readImage(path string) (*firmware.Image, error) {
	data, err := s.readInput(path, firmware.MaxImageSize, "image")
	if err != nil {
		return nil, err
	}
	img, err := firmware.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("read image %s: %w", displayPath(path), err)
	}
	return img, nil
}

func (s *streams) writeImage(path string, img *firmware.Image, force bool) error {
	data, err := img.MarshalBinary()
	if err != nil {
		return err
	}
	return s.writeOutput(path, data, 0o644, force)
}

// readClassPublicKey reads a class public key, or the public half of a
// class private key file.
func (s *streams) readClassPublicKey(path string) (*sealing.PublicKey, error) {
	data, err := s.readInput(path, sealing.MaxKeyPEM, "class key")
	if err != nil {
		return nil, err
	}
	key, err := sealing.ParsePublicKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("read class key %s: %w", displayPath(path), err)
	}
	return key, nil
}

func (s *streams) readClassPrivateKey(path string) (*sealing.PrivateKey, error) {
	data, err := s.readInput(path, sealing.MaxKeyPEM, "class key")
	if err != nil {
		return nil, err
	}
	key, err := sealing.ParsePrivateKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("read class key %s: %w", displayPath(path), err)
	}
	return key, nil
}

func (s *streams) readSigners(paths []string) ([]crypto.Signer, error) {
	var signers []crypto.Signer
	for _, p := range paths {
		key, err := s.readKey(p)
		if err != nil {
			return nil, err
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("sign image: %s holds a public key; signing needs the private key", displayPath(p))
		}
		signers = append(signers, signer)
	}
	return signers, nil
}

// firmwareRoots returns the SHA-256 of each root key's DER SPKI, from key
// files and from hex digests.
func (s *streams) firmwareRoots(paths, ids []string) ([][sha256.Size]byte, error) {
	var roots [][sha256.Size]byte
	for _, p := range paths {
		key, err := s.readKey(p)
		if err != nil {
			return nil, err
		}
		id, err := identity.FromPublicKey(publicOf(key))
		if err != nil {
			return nil, fmt.Errorf("root key %s: %w", displayPath(p), err)
		}
		roots = append(roots, id)
	}
	for _, text := range ids {
		id, err := identity.Parse(text)
		if err != nil {
			return nil, usagef("--root-id %q: %v", text, err)
		}
		roots = append(roots, id)
	}
	return roots, nil
}

// fileOutput is one file of a command that writes several.
type fileOutput struct {
	path string
	data []byte
	perm fs.FileMode
}

// writeOutputs checks that no file exists (unless force) before writing
// any, so a refused command leaves no half of a key pair behind.
func (s *streams) writeOutputs(outputs []fileOutput, force bool) error {
	if !force {
		for _, o := range outputs {
			if !isStdio(o.path) && fileExists(o.path) {
				return fmt.Errorf("write %s: file exists (use --force to replace it)", o.path)
			}
		}
	}
	for _, o := range outputs {
		if err := s.writeOutput(o.path, o.data, o.perm, force); err != nil {
			return err
		}
	}
	return nil
}

func isStdio(path string) bool { return path == "" || path == stdioMarker }

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// stdinCount counts the flags set to "-"; empty values are optional inputs
// left unset, not standard input.
func stdinCount(paths ...string) int {
	n := 0
	for _, p := range paths {
		if p == stdioMarker {
			n++
		}
	}
	return n
}
