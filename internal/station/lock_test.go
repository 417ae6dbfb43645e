package station

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/manifest"
)

// TestStationLocksEveryDevice: by default every chip leaves the station
// with every lock burned, its state file says so, a debug probe gets
// nothing out of it, and the signed manifest records it closed.
func TestStationLocksEveryDevice(t *testing.T) {
	f := newFactory(t)
	dir := t.TempDir()
	cfg := f.config(t, dir, 8)
	sum, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sum.LeftOpen != 0 {
		t.Fatalf("%d devices left open", sum.LeftOpen)
	}
	for i, r := range f.verifyManifest(t, dir) {
		if r.Locks != manifest.LocksClosed {
			t.Errorf("record %d locks %q, want %q", i, r.Locks, manifest.LocksClosed)
		}
		dev, err := device.Load(filepath.Join(dir, devicesDir, deviceFile(i)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !dev.LockState().Closed() {
			t.Errorf("device %d lock state %s", i, dev.LockState())
		}
		if _, err := dev.DebugRead(device.RegionKeyStore); !errors.Is(err, device.ErrDebugLocked) {
			t.Errorf("device %d: debug read of the key store: %v", i, err)
		}
	}
}

// TestStationLeavesDevelopmentBoardsOpen: LeaveOpen keeps the chips
// debuggable and the manifest says so; the batch cannot be resumed with
// the other choice.
func TestStationLeavesDevelopmentBoardsOpen(t *testing.T) {
	f := newFactory(t)
	dir := t.TempDir()
	cfg := f.config(t, dir, 4)
	cfg.LeaveOpen = true
	sum, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sum.LeftOpen != 4 {
		t.Fatalf("LeftOpen %d, want 4", sum.LeftOpen)
	}
	for i, r := range f.verifyManifest(t, dir) {
		if r.Locks != manifest.LocksOpen {
			t.Errorf("record %d locks %q, want open", i, r.Locks)
		}
	}
	dev, err := device.Load(filepath.Join(dir, devicesDir, deviceFile(0)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dev.DebugRead(device.RegionKeyStore); err != nil {
		t.Fatalf("debug read of a development board: %v", err)
	}
	cfg.LeaveOpen = false
	if _, err := Run(context.Background(), cfg); !errors.Is(err, ErrMismatch) {
		t.Fatalf("resuming an open batch locked: %v, want ErrMismatch", err)
	}
}
