package devicecmd

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
)

// tpmAddressHelp is how --tpm names a TPM (tpm.ParseAddress).
const tpmAddressHelp = "tpm class: the gateway's TPM `ADDRESS`: /dev/tpmrm0, tcp://HOST:PORT (swtpm's command port) or unix:///PATH"

func bindTPM(cmd *cobra.Command, addr *string) {
	cmd.Flags().StringVar(addr, "tpm", "", tpmAddressHelp)
}

// newDeviceTPMCmd re-points a tpm-class device at its TPM: the keys are
// blobs only that TPM can load, so the address can change (a simulator on
// another port) but the TPM cannot.
func newDeviceTPMCmd(s *cmdline.Streams) *cobra.Command {
	var statePath, addr string
	cmd := &cobra.Command{
		Use:   "tpm --state STATE [--tpm ADDRESS]",
		Short: "Show or change where a tpm-class device's TPM is (its keys must load there)",
		Long: `A tpm-class device (a Linux gateway) keeps its enrolment and operational
keys in its TPM 2.0; its state file holds the TPM's address and each key as
the TPM wrapped it under its storage root key, which only that TPM can load.

Without --tpm, print the address. With --tpm, move to that address if the
TPM found there loads the device's keys, and refuse otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			dev, err := loadDevice(statePath)
			if err != nil {
				return err
			}
			if addr != "" {
				if err := dev.SetTPM(addr); err != nil {
					return err
				}
				if err := dev.Save(statePath); err != nil {
					return err
				}
			}
			if dev.TPMAddress() == "" {
				return fmt.Errorf("device is of class %s: it has no TPM", dev.Class())
			}
			_, err = fmt.Fprintln(s.Out, dev.TPMAddress())
			return err
		},
	}
	bindState(cmd, &statePath)
	bindTPM(cmd, &addr)
	return cmd
}
