package firmwarecmd

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

func newFirmwareInspectCmd(s *cmdline.Streams) *cobra.Command {
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
			img, err := readImage(s, image)
			if err != nil {
				return err
			}
			report := describeImage(img)
			if asJSON {
				enc := json.NewEncoder(s.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(report)
			}
			return report.print(s.Out)
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
	RetireSlots     []int             `json:"retire_slots"`
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
		Format: int(h.Format), Type: h.Type.String(), Version: h.Version.String(),
		SecurityCounter: h.SecurityCounter, RetireSlots: h.RetireSlots.Slots(), PayloadSize: h.PayloadSize,
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
	if len(r.RetireSlots) > 0 {
		var mask firmware.SlotMask
		for _, slot := range r.RetireSlots {
			mask |= 1 << slot
		}
		fmt.Fprintf(tw, "retires root slots:\t%s\n", mask)
	}
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
