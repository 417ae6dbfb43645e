package store

import (
	"context"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
)

// The firmware repository (internal/firmwarerepo) keeps the image bytes in
// a content-addressed blob store in the data directory that every replica
// shares; the store keeps only what describes an image, so listing images
// or checking a device's download never reads megabytes from the database.

// FirmwareImage describes one uploaded, verified image. Digest, the
// SHA-256 of the whole image file, names it.
type FirmwareImage struct {
	Digest    [32]byte
	ProductID string
	// Type is the header's image type name ("app").
	Type string
	// Version is the header's MAJOR.MINOR.PATCH; SecurityCounter its
	// anti-rollback counter.
	Version         string
	SecurityCounter uint32
	// Size is the length of the image file in bytes.
	Size int64
	// Encrypted says the payload is sealed to the product's class key.
	Encrypted bool
	// Signers are the identities (SHA-256 of the SPKI) of the keys whose
	// signatures the image carries, in the image's order.
	Signers    []identity.ID
	UploadedAt time.Time
	// UploadedBy is the audit actor of the upload ("token:<id>").
	UploadedBy string
}

// FirmwareFilter selects images, ordered by digest; zero fields match
// everything.
type FirmwareFilter struct {
	ProductID string
	// After is the last digest of the previous page (keyset pagination).
	After [32]byte
	// Limit caps the page as DeviceFilter's does (PageLimit).
	Limit int
}

// FirmwareImages holds the metadata of the firmware repository.
type FirmwareImages interface {
	// PutFirmwareImage records img unless an image of that digest is
	// recorded already, and returns the record that holds afterwards with
	// created true when this call made it. Of concurrent calls for one
	// digest exactly one creates. An existing record is returned as it is,
	// even if img differs (same bytes, same header). An unknown product is
	// ErrNotFound.
	PutFirmwareImage(ctx context.Context, img FirmwareImage) (rec FirmwareImage, created bool, err error)
	// GetFirmwareImage returns an image's record; an unknown digest is
	// ErrNotFound.
	GetFirmwareImage(ctx context.Context, digest [32]byte) (FirmwareImage, error)
	// ListFirmwareImages returns a page of images by digest.
	ListFirmwareImages(ctx context.Context, f FirmwareFilter) ([]FirmwareImage, error)
}

// FirmwarePolicy is what a product's devices check firmware against, as
// the platform records it: the firmware repository refuses an image their
// boot ROM would refuse.
type FirmwarePolicy struct {
	// Roots are the SHA-256 digests of the vendor root keys' DER
	// SubjectPublicKeyInfo, in OTP slot order; empty: no image is accepted.
	Roots [][32]byte
	// Retired is the set of retired slots, bit i for slot i.
	Retired uint8
	// ClassKey is the fingerprint of the device-class public key that
	// encrypted images must be sealed to; zero: none is set, and an
	// encrypted image is refused.
	ClassKey [32]byte
}
