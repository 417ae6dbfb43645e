package admincmd

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
)

// "hallmark admin firmware": the firmware repository (docs/ota.md), and
// the product flags that set what it checks uploads against.

func newAdminFirmwareCmd(s *cmdline.Streams, f *adminFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "firmware", Short: "Upload, list and describe firmware images in the platform's repository"}
	var product string
	upload := &cobra.Command{
		Use:   "upload --product P FILE",
		Short: "Upload a signed firmware image for a product",
		Long: `Upload a signed (and optionally encrypted) image, as "hallmark firmware sign"
wrote it, for a product. The platform refuses it unless the product's devices
would boot it: signed by every live root of the product's firmware policy
(hallmark admin product update --firmware-root), not only under a retired
slot, an application image, and if encrypted, encrypted to the product's
device-class key (--class-key). Uploading the same file again changes nothing.`,
		Args: cobra.ExactArgs(1),
		RunE: adminRun(s, f, func(ctx context.Context, c *httpapi.Client, args []string) error {
			if product == "" {
				return cmdline.Usagef("--product is required")
			}
			data, err := s.ReadInput(args[0], firmware.MaxImageSize, "firmware image")
			if err != nil {
				return err
			}
			img, err := c.UploadFirmware(ctx, product, bytes.NewReader(data))
			if err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "firmware %s for product %s: %s %s, security counter %d, %d bytes%s, uploaded %s by %s\n",
				cmdline.Safe(img.Digest), cmdline.Safe(img.Product), cmdline.Safe(img.Type), cmdline.Safe(img.Version),
				img.SecurityCounter, img.Size, encryptedNote(img.Encrypted), formatTime(img.UploadedAt), cmdline.Safe(img.UploadedBy))
			return nil
		}),
	}
	upload.Flags().StringVar(&product, "product", "", "product `ID` the image is for (required)")
	var q httpapi.FirmwareQuery
	var asJSON bool
	list := &cobra.Command{
		Use:   "list [--product P] [--json]",
		Short: "List firmware images, by digest",
		Args:  cobra.NoArgs,
		RunE: adminRun(s, f, func(ctx context.Context, c *httpapi.Client, _ []string) error {
			page, err := c.ListFirmware(ctx, q)
			if err != nil || asJSON {
				return errOrJSON(s, err, page)
			}
			var rows [][]string
			for _, img := range page.Images {
				rows = append(rows, []string{img.Digest, img.Product, img.Version, fmt.Sprint(img.SecurityCounter),
					fmt.Sprint(img.Size), fmt.Sprint(img.Encrypted), formatTime(img.UploadedAt)})
			}
			if err := s.Table("DIGEST\tPRODUCT\tVERSION\tCOUNTER\tSIZE\tENCRYPTED\tUPLOADED", rows); err != nil {
				return err
			}
			if page.Next != "" {
				fmt.Fprintf(s.Out, "more: --after %s\n", cmdline.Safe(page.Next))
			}
			return nil
		}),
	}
	list.Flags().StringVar(&q.Product, "product", "", "only images of this product `ID`")
	list.Flags().StringVar(&q.After, "after", "", "the last `DIGEST` of the previous page")
	list.Flags().IntVar(&q.Limit, "limit", 0, "page size `N`, 1 to 1000 (default 100)")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	var getJSON bool
	get := &cobra.Command{
		Use:   "get DIGEST [--json]",
		Short: "Describe a firmware image",
		Args:  cobra.ExactArgs(1),
		RunE: adminRun(s, f, func(ctx context.Context, c *httpapi.Client, args []string) error {
			img, err := c.GetFirmware(ctx, args[0])
			if err != nil || getJSON {
				return errOrJSON(s, err, img)
			}
			rows := [][]string{{"digest", img.Digest}, {"product", img.Product}, {"type", img.Type}, {"version", img.Version},
				{"security counter", fmt.Sprint(img.SecurityCounter)}, {"size", fmt.Sprint(img.Size)},
				{"encrypted", fmt.Sprint(img.Encrypted)}, {"uploaded", formatTime(img.UploadedAt)}, {"uploaded by", img.UploadedBy},
				{"device path", img.Path}}
			for i, signer := range img.Signers {
				rows = append(rows, []string{fmt.Sprintf("signer %d", i+1), signer})
			}
			return s.Table("FIELD\tVALUE", rows)
		}),
	}
	get.Flags().BoolVar(&getJSON, "json", false, "print JSON")
	cmd.AddCommand(upload, list, get)
	return cmd
}

func encryptedNote(encrypted bool) string {
	if encrypted {
		return ", encrypted"
	}
	return ""
}

// policyFlags are the product flags of the firmware policy, for product
// add and product update.
type policyFlags struct {
	roots   []string
	retired []int
	class   string
}

func (p *policyFlags) register(fs *pflag.FlagSet) {
	fs.StringArrayVar(&p.roots, "firmware-root", nil, "a vendor firmware root: a public key `FILE|HEX` (its SHA-256 in hex); repeat in OTP slot order")
	fs.IntSliceVar(&p.retired, "retired-slot", nil, "a retired root-key slot `N` (0 to 3); repeat for more")
	fs.StringVar(&p.class, "class-key", "", "device-class public key `FILE` (or its SHA-256 in hex) encrypted images must be sealed to")
}

// rootFingerprint takes a 64-character hex digest as it is, and reads
// anything else as a public key file.
func rootFingerprint(s *cmdline.Streams, v string) (string, error) {
	if _, err := identity.Parse(v); err == nil {
		return v, nil
	}
	roots, err := s.RootHashes([]string{v}, nil)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(roots[0][:]), nil
}

func classFingerprint(s *cmdline.Streams, v string) (string, error) {
	if _, err := identity.Parse(v); err == nil || v == "" {
		return v, nil
	}
	key, err := s.ReadClassPublicKey(v)
	if err != nil {
		return "", err
	}
	fp := key.Fingerprint()
	return hex.EncodeToString(fp[:]), nil
}

// resolve turns the flags given into the request's members; changed says
// which flags were given (all for product add).
func (p *policyFlags) resolve(s *cmdline.Streams, changed func(string) bool) (roots *[]string, retired *[]int, class *string, err error) {
	if changed("firmware-root") {
		list := []string{}
		for _, v := range p.roots {
			fp, err := rootFingerprint(s, v)
			if err != nil {
				return nil, nil, nil, err
			}
			list = append(list, fp)
		}
		roots = &list
	}
	if changed("retired-slot") {
		slots := append([]int{}, p.retired...)
		retired = &slots
	}
	if changed("class-key") {
		fp, err := classFingerprint(s, p.class)
		if err != nil {
			return nil, nil, nil, err
		}
		class = &fp
	}
	return roots, retired, class, nil
}

// printFirmwarePolicy says what a product's firmware policy now is.
func printFirmwarePolicy(s *cmdline.Streams, p httpapi.Product) {
	var slots []string
	for _, i := range p.FirmwareRetiredSlots {
		slots = append(slots, strconv.Itoa(i))
	}
	retired := strings.Join(slots, ",")
	if retired == "" {
		retired = "none"
	}
	fmt.Fprintf(s.Out, "firmware policy: %d roots, retired slots %s, class key %s\n", len(p.FirmwareRoots), retired,
		cmdline.Safe(orDash(p.FirmwareClassKey)))
}
