package devicecmd

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/device"
)

// The chip's locks (docs/manufacturing.md, "Locking the device"): showing
// them, burning them by hand (a station burns them itself), and trying
// what an attacker with a debug probe would try.

func newDeviceLocksCmd(s *cmdline.Streams) *cobra.Command {
	var statePath string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "locks --state STATE",
		Short: "Show which locks are burned: debug port, key-store window, bootloader",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			dev, err := loadDevice(statePath)
			if err != nil {
				return err
			}
			st := dev.LockState()
			if asJSON {
				return s.PrintJSON(struct {
					Debug      bool   `json:"debug"`
					KeyWindow  bool   `json:"key_store_window"`
					Bootloader bool   `json:"bootloader"`
					Closed     bool   `json:"closed"`
					Locks      string `json:"locks"`
				}{st.Debug, st.KeyWindow, st.Bootloader, st.Closed(), st.String()})
			}
			rows := make([][]string, 0, len(device.AllLocks))
			for _, l := range device.AllLocks {
				rows = append(rows, []string{string(l), lockWord(st.Has(l))})
			}
			return s.Table("LOCK\tSTATE", rows)
		},
	}
	bindState(cmd, &statePath)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func lockWord(locked bool) string {
	if locked {
		return "locked"
	}
	return "open"
}

func newDeviceLockCmd(s *cmdline.Streams) *cobra.Command {
	var statePath string
	var names []string
	cmd := &cobra.Command{
		Use:   "lock --state STATE [--lock debug|key-store-window|bootloader]...",
		Short: "Burn lock fuses (all of them by default); nothing unburns them",
		Long: `Burn the chip's lock fuses, as the station does at the end of provisioning:
the debug port is disabled, the key store's flash region is readable only by
the ROM and the initial enrolment firmware, and the bootloader takes only
images the ROM verifies and no more keys. Locks are one-way.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			locks := make([]device.Lock, 0, len(names))
			for _, n := range names {
				l, err := device.ParseLock(n)
				if err != nil {
					return cmdline.Usage(err)
				}
				locks = append(locks, l)
			}
			dev, err := loadDevice(statePath)
			if err != nil {
				return err
			}
			if err := dev.Lock(locks...); err != nil {
				return err
			}
			if err := dev.Save(statePath); err != nil {
				return err
			}
			_, err = fmt.Fprintf(s.Out, "locks burned: %s\n", dev.LockState())
			return err
		},
	}
	bindState(cmd, &statePath)
	cmd.Flags().StringSliceVar(&names, "lock", nil, "lock to burn (repeat; default: every lock)")
	return cmd
}

func newDeviceDebugReadCmd(s *cmdline.Streams) *cobra.Command {
	var statePath, region string
	cmd := &cobra.Command{
		Use:   "debug-read --state STATE --region otp|flash|key-store",
		Short: "Read a memory region through the debug port, as an attacker with a probe would",
		Long: `Read a memory region of the chip through its debug port (JTAG/SWD), as an
attacker holding the device would. An open chip gives out everything,
including the key store: the device's private key, or on a puf chip the
SRAM start-up pattern it is derived from. A chip whose debug port is locked
refuses every read; one whose key store is behind the flash access window
refuses the key-store region. The region is printed as JSON.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			r, err := device.ParseRegion(region)
			if err != nil {
				return cmdline.Usage(err)
			}
			dev, err := loadDevice(statePath)
			if err != nil {
				return err
			}
			data, err := dev.DebugRead(r)
			if errors.Is(err, device.ErrDebugLocked) || errors.Is(err, device.ErrAccessWindow) {
				return fmt.Errorf("refused by the chip: %w", err)
			}
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(s.Out, "%s\n", strings.TrimSpace(string(data)))
			return err
		},
	}
	bindState(cmd, &statePath)
	cmd.Flags().StringVar(&region, "region", "key-store", "memory region: otp, flash or key-store")
	return cmd
}
