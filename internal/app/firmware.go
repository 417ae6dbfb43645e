package app

import (
	"github.com/hallmark-iot/hallmark/internal/firmwarerepo"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
)

// startFirmware builds the firmware repository on the data directory's
// blob store, which replicas share as they share the data directory
// (README, "Replicas"), and adds its routes.
func (p *Platform) startFirmware(api *httpapi.Server, devices firmwarerepo.Authenticator, verify httpapi.DeviceVerifier) error {
	blobs, err := firmwarerepo.OpenBlobs(firmwarerepo.BlobDir(p.cfg.DataDir))
	if err != nil {
		return err
	}
	repo, err := firmwarerepo.New(firmwarerepo.Config{Store: p.Store, Blobs: blobs, Devices: devices, Audit: p.Store,
		Log: p.cfg.Log, Now: p.cfg.Now})
	if err != nil {
		return err
	}
	return api.HandleFirmware(repo, verify)
}
