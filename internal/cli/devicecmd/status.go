package devicecmd

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/monitoring"
)

func newDeviceStatusCmd(s *cmdline.Streams) *cobra.Command {
	var statePath string
	var pf cmdline.PlatformFlags
	cmd := &cobra.Command{
		Use:   "status --state STATE --server URL --ca-file ROOT.pem",
		Short: "Boot the device and report its status (firmware, anti-rollback counter, keys, uptime) over mutual TLS",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dev, held, cert, err := onboardedDevice(statePath, "status") // boots it
			if err != nil {
				return err
			}
			booted := time.Now()
			version, err := runningVersion(statePath)
			if err != nil {
				return err
			}
			httpc, err := pf.HTTPClient(s, cert)
			if err != nil {
				return err
			}
			t := &httpapi.OnboardingTransport{BaseURL: pf.Server, HTTP: httpc}
			report := monitoring.StatusReport{FirmwareVersion: version.String(), SecurityCounter: dev.SecurityCounter(),
				BootResult: "ok", EnrolmentAlgorithm: dev.Algorithm(), OperationalAlgorithm: held.OperationalAlg,
				UptimeSeconds: int64(time.Since(booted) / time.Second)}
			receipt, err := t.ReportStatus(cmd.Context(), report)
			if err != nil {
				return err
			}
			if err := dev.Save(statePath); err != nil { // the boot may have advanced the counter
				return err
			}
			_, err = fmt.Fprintf(s.Out, "status reported for %s at %s: firmware %s, anti-rollback counter %d\n",
				receipt.Identity, receipt.ReceivedAt.Format(time.RFC3339), report.FirmwareVersion, report.SecurityCounter)
			return err
		},
	}
	bindState(cmd, &statePath)
	pf.Bind(cmd)
	return cmd
}

// runningVersion is the version in the header of the image in the chip's
// active slot, which the ROM has just verified and started. Flash is
// readable by anyone with a programmer, so this reveals nothing the chip
// keeps secret.
func runningVersion(statePath string) (firmware.Version, error) {
	dev, err := device.Load(statePath, nil)
	if err != nil {
		return firmware.Version{}, fmt.Errorf("status: %w", err)
	}
	h, err := dev.ActiveHeader()
	if err != nil {
		return firmware.Version{}, fmt.Errorf("status: the image in flash: %w", err)
	}
	return h.Version, nil
}
