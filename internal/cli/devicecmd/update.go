package devicecmd

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/firmware"
)

// newDeviceUpdateCmd drives one A/B update the way the device's update
// agent does: boot, install into the inactive slot, reset, confirm. The
// download and the report to the platform are the agent's, not this
// command's.
func newDeviceUpdateCmd(s *cmdline.Streams) *cobra.Command {
	var statePath, imagePath string
	var noConfirm bool
	cmd := &cobra.Command{
		Use:   "update --state STATE --image IMAGE [--no-confirm]",
		Short: "Install a firmware update into the inactive slot, reboot into it and confirm it",
		Long: `Boot the device, check the image with the ROM's rules and write it into the
inactive slot, reset, and confirm the new firmware if the ROM started it. An
image the ROM refuses is never written; one that does not boot is rolled back
to the previous slot. --no-confirm stops after the trial boot: the next boot
then rolls back. Refusals and rollbacks exit 1 with a stable reason code.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			dev, err := loadDevice(statePath)
			if err != nil {
				return err
			}
			img, err := s.ReadInput(imagePath, firmware.MaxImageSize, "image")
			if err != nil {
				return err
			}
			if err := dev.Boot(); err != nil {
				return withReason(err)
			}
			if err := dev.InstallUpdate(img); err != nil {
				return withReason(err)
			}
			st := dev.LastUpdate()
			fmt.Fprintf(s.Out, "installed: %s (security counter %d) in slot %s\n", st.Version, st.SecurityCounter, st.Slot)
			if err := dev.Boot(); err != nil { // the reset; falls back on its own
				dev.Save(statePath)
				return withReason(err)
			}
			if st = dev.LastUpdate(); st.Outcome == device.UpdateRolledBack {
				if err := dev.Save(statePath); err != nil {
					return err
				}
				return fmt.Errorf("update rolled back to the previous slot [reason %s]: %s", st.Reason, st.Detail)
			}
			fmt.Fprintf(s.Out, "booted: slot %s on trial\n", st.Slot)
			if !noConfirm {
				if err := dev.ConfirmUpdate(); err != nil {
					return err
				}
				fmt.Fprintf(s.Out, "confirmed: slot %s active; anti-rollback counter %d; retired root slots: %s\n",
					st.Slot, dev.SecurityCounter(), dev.RetiredRootSlots())
			}
			return dev.Save(statePath)
		},
	}
	bindState(cmd, &statePath)
	cmd.Flags().StringVar(&imagePath, "image", "", "firmware image `FILE`")
	cmd.Flags().BoolVar(&noConfirm, "no-confirm", false, "stop after the trial boot, without confirming")
	return cmd
}

func withReason(err error) error {
	return fmt.Errorf("%w [reason %s]", err, device.ReasonCode(err))
}
