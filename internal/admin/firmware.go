package admin

import (
	"encoding/hex"
	"slices"
	"strings"

	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// A product's firmware policy: what its devices' boot ROM checks images
// against, which the firmware repository (internal/firmwarerepo) applies
// to uploads. Roots and the class key are SHA-256 fingerprints in hex, so
// the API never handles key material.

// parseFingerprint reads 64 lowercase hex characters.
func parseFingerprint(field, v string) ([32]byte, error) {
	var out [32]byte
	b, err := hex.DecodeString(v)
	if err != nil || len(b) != 32 || strings.ToLower(v) != v {
		return out, fieldError(field, "%q is not a SHA-256 fingerprint (64 lowercase hex characters)", truncate(v, 70))
	}
	copy(out[:], b)
	return out, nil
}

func parseRoots(v []string) ([][32]byte, error) {
	if len(v) > firmware.MaxRootSlots {
		return nil, fieldError("firmware_roots", "%d roots; a device has at most %d root-key slots", len(v), firmware.MaxRootSlots)
	}
	var roots [][32]byte
	for _, s := range v {
		h, err := parseFingerprint("firmware_roots", s)
		if err != nil {
			return nil, err
		}
		if slices.Contains(roots, h) {
			return nil, fieldError("firmware_roots", "root %s is listed twice", s)
		}
		roots = append(roots, h)
	}
	return roots, nil
}

func parseRetired(v []int) (uint8, error) {
	var m uint8
	for _, i := range v {
		if i < 0 || i >= firmware.MaxRootSlots {
			return 0, fieldError("firmware_retired_slots", "slot %d; slots are 0 to %d", i, firmware.MaxRootSlots-1)
		}
		m |= 1 << i
	}
	return m, nil
}

func parseClassKey(v string) ([32]byte, error) {
	if v == "" {
		return [32]byte{}, nil
	}
	return parseFingerprint("firmware_class_key", v)
}

// checkFirmwarePolicy refuses a policy no device could have: a retired
// slot without a root, or every root retired (a device that boots
// nothing).
func checkFirmwarePolicy(p store.FirmwarePolicy) error {
	for i := range firmware.MaxRootSlots {
		if p.Retired&(1<<i) != 0 && i >= len(p.Roots) {
			return fieldError("firmware_retired_slots", "slot %d is retired but the product has %d roots", i, len(p.Roots))
		}
	}
	if len(p.Roots) > 0 && len(firmware.SlotMask(p.Retired).Slots()) == len(p.Roots) {
		return fieldError("firmware_retired_slots", "every root would be retired; a device would boot nothing")
	}
	return nil
}

func (req ProductRequest) firmwarePolicy() (store.FirmwarePolicy, error) {
	var p store.FirmwarePolicy
	var err error
	if p.Roots, err = parseRoots(req.FirmwareRoots); err != nil {
		return p, err
	}
	if p.Retired, err = parseRetired(req.FirmwareRetiredSlots); err != nil {
		return p, err
	}
	if p.ClassKey, err = parseClassKey(req.FirmwareClassKey); err != nil {
		return p, err
	}
	return p, checkFirmwarePolicy(p)
}

// updateFirmware sets u's firmware members from req, checks the policy
// they leave with current, and describes the change for the audit log.
func (req ProductUpdateRequest) updateFirmware(current store.FirmwarePolicy, u *store.ProductUpdate) ([]string, error) {
	next := current
	var changed []string
	if req.FirmwareRoots != nil {
		roots, err := parseRoots(*req.FirmwareRoots)
		if err != nil {
			return nil, err
		}
		next.Roots, u.FirmwareRoots = roots, &roots
		changed = append(changed, "firmware_roots="+strings.Join(*req.FirmwareRoots, ","))
	}
	if req.FirmwareRetiredSlots != nil {
		m, err := parseRetired(*req.FirmwareRetiredSlots)
		if err != nil {
			return nil, err
		}
		next.Retired, u.FirmwareRetired = m, &m
		changed = append(changed, "firmware_retired_slots="+firmware.SlotMask(m).String())
	}
	if req.FirmwareClassKey != nil {
		k, err := parseClassKey(*req.FirmwareClassKey)
		if err != nil {
			return nil, err
		}
		next.ClassKey, u.FirmwareClassKey = k, &k
		changed = append(changed, "firmware_class_key="+*req.FirmwareClassKey)
	}
	return changed, checkFirmwarePolicy(next)
}

// RetiredSlots lists the slots of a retirement mask in increasing order.
func RetiredSlots(mask uint8) []int {
	return append([]int{}, firmware.SlotMask(mask).Slots()...)
}

// FormatRoots is a policy's roots in hex, in slot order.
func FormatRoots(roots [][32]byte) []string {
	out := make([]string, len(roots))
	for i, r := range roots {
		out[i] = hex.EncodeToString(r[:])
	}
	return out
}
