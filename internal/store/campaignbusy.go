package store

import (
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/identity"
)

// OpenCampaignStates are the states in which a campaign still targets its
// devices: a device takes part in one open campaign at a time.
var OpenCampaignStates = []CampaignState{CampaignRunning, CampaignPaused}

// BusyDevicesError refuses a campaign some of whose devices an open
// campaign targets already. CreateCampaign checks it inside its own
// transaction, under a lock every creation takes, so two replicas
// creating campaigns at once cannot both target a device; nothing is
// written. It is ErrConflict (errors.Is), and Devices lists the busy
// identities so that a caller can leave them out and try again.
type BusyDevicesError struct {
	Devices []identity.ID
}

func (e *BusyDevicesError) Error() string {
	return fmt.Sprintf("%d devices are targeted by an open campaign already", len(e.Devices))
}

// Is makes the error ErrConflict.
func (e *BusyDevicesError) Is(target error) bool { return target == ErrConflict }
