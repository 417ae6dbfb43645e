package ota

import (
	"errors"
	"strings"
	"testing"
)

func TestReportCheck(t *testing.T) {
	good := []Report{
		{CampaignID: "cmp_0123456789abcdef", State: StateDownloading},
		{CampaignID: "cmp_0123456789abcdef", State: StateBooted, FirmwareVersion: "2.0.0"},
		{CampaignID: "cmp_0123456789abcdef", State: StateFailed, Reason: "retired-root", Detail: "ROM refused the image"},
		{CampaignID: "cmp_0123456789abcdef", State: StateRolledBack, Reason: "no-boot"},
		{CampaignID: "cmp_0123456789abcdef", State: StateMigrated},
	}
	for _, r := range good {
		if err := r.Check(); err != nil {
			t.Errorf("%+v: %v", r, err)
		}
	}
	bad := map[string]Report{
		"no campaign":               {State: StateBooted},
		"long campaign":             {CampaignID: strings.Repeat("c", 65), State: StateBooted},
		"platform's own state":      {CampaignID: "c", State: StateOffered},
		"pending":                   {CampaignID: "c", State: StatePending},
		"unknown state":             {CampaignID: "c", State: "done"},
		"failed without a reason":   {CampaignID: "c", State: StateFailed},
		"rollback without a reason": {CampaignID: "c", State: StateRolledBack},
		"reason on success":         {CampaignID: "c", State: StateBooted, Reason: "rollback"},
		"reason not a code":         {CampaignID: "c", State: StateFailed, Reason: "Bad Signature"},
		"reason too long":           {CampaignID: "c", State: StateFailed, Reason: "a" + strings.Repeat("b", MaxReason)},
		"detail too long":           {CampaignID: "c", State: StateFailed, Reason: "x", Detail: strings.Repeat("d", MaxDetail+1)},
		"version too long":          {CampaignID: "c", State: StateBooted, FirmwareVersion: strings.Repeat("1", 65)},
	}
	for name, r := range bad {
		if err := r.Check(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestDeviceStates(t *testing.T) {
	terminal := map[DeviceState]bool{StateBooted: true, StateMigrated: true, StateFailed: true, StateRolledBack: true}
	for _, s := range DeviceStates {
		if s.Terminal() != terminal[s] {
			t.Errorf("%s: Terminal() = %v", s, s.Terminal())
		}
		if s.Reported() == (s == StatePending || s == StateOffered) {
			t.Errorf("%s: Reported() = %v", s, s.Reported())
		}
	}
	if DeviceState("booted ").Reported() || DeviceState("").Terminal() {
		t.Error("an unknown state is reported or terminal")
	}
}
