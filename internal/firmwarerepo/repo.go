// Package firmwarerepo owns the platform's firmware repository: a
// vendor uploads a signed image for a product, the repository refuses
// whatever the product's devices' boot ROM would refuse (their vendor
// roots, retired slots and device-class key, as the product records
// them), keeps the image by its SHA-256 in a blob store in the data
// directory that every replica shares, describes it in the store, and
// hands it to the product's onboarded devices (docs/ota.md, "Firmware
// repository").
//
// The platform never holds a device-class private key: an encrypted
// image's signatures and recipient are checked, its plaintext only by the
// device.
package firmwarerepo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Audit actions of the repository.
const (
	ActionUpload   = "firmware.upload"
	ActionList     = "firmware.list"
	ActionGet      = "firmware.get"
	ActionDownload = "firmware.download"
)

// ErrNotFound answers a device asking for an image it may not have: an
// unknown digest and another product's image are the same answer, so a
// device learns nothing of images that are not its own.
var ErrNotFound = errors.New("no such firmware image")

// Store is what the repository asks of the store.
type Store interface {
	GetProduct(ctx context.Context, id string) (store.Product, error)
	GetDevice(ctx context.Context, id identity.ID) (store.Device, error)
	store.FirmwareImages
}

// Authenticator finds the device of a verified client certificate,
// refusing one that may not use it (onboarding.Service).
type Authenticator interface {
	AuthenticateDevice(ctx context.Context, leaf *x509.Certificate, action, addr string) (identity.ID, error)
}

// Config configures the repository.
type Config struct {
	Store   Store
	Blobs   *Blobs
	Devices Authenticator
	// Recorder writes the audit events; nil records to Audit.
	Recorder *audit.Recorder
	Audit    audit.Appender
	Log      *slog.Logger
	Now      func() time.Time
}

// Service is the firmware repository.
type Service struct {
	cfg Config
}

// New returns the repository.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Blobs == nil {
		return nil, errors.New("firmwarerepo: a store and a blob store are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Recorder == nil {
		if cfg.Audit == nil {
			return nil, errors.New("firmwarerepo: a recorder or an audit log is required")
		}
		cfg.Recorder = audit.NewRecorder(cfg.Audit, cfg.Log, cfg.Now)
	}
	return &Service{cfg: cfg}, nil
}

// call is one audited admin call in progress.
type call struct {
	caller          admin.Caller
	action, subject string
	detail          string
}

// finish records the call's one audit event, whatever its outcome, and
// returns err as an *admin.Error.
func (s *Service) finish(ctx context.Context, c *call, err error) error {
	outcome, detail := "ok", c.detail
	var e *admin.Error
	if err != nil {
		e = admin.Classify(err)
		outcome = "error"
		if e.Code == admin.CodeForbidden {
			outcome = "denied"
		}
		detail = e.Code
		if c.detail != "" {
			detail += ": " + c.detail
		}
	}
	s.cfg.Recorder.Record(ctx, store.AuditEvent{Actor: c.caller.Actor(), Action: c.action, Subject: c.subject,
		Outcome: outcome, Detail: detail, RemoteAddr: c.caller.Addr})
	if e == nil {
		return nil
	}
	return e
}

// Upload checks an image read from body (at most firmware.MaxImageSize
// bytes) against product productID's firmware policy and, if its devices
// would boot it, stores it. It returns the image's record and whether
// this call created it: the same image again is the existing record.
func (s *Service) Upload(ctx context.Context, caller admin.Caller, productID string, body io.Reader) (_ store.FirmwareImage, created bool, err error) {
	c := &call{caller: caller, action: ActionUpload, subject: audit.Subject("product:" + productID)}
	defer func() { err = s.finish(ctx, c, err) }()
	if !audit.ProductIDPattern.MatchString(productID) {
		return store.FirmwareImage{}, false, admin.Errorf(admin.CodeNotFound, "no product %q", productID)
	}
	p, err := s.cfg.Store.GetProduct(ctx, productID)
	if errors.Is(err, store.ErrNotFound) {
		return store.FirmwareImage{}, false, admin.Errorf(admin.CodeNotFound, "no product %q", productID)
	}
	if err != nil {
		return store.FirmwareImage{}, false, err
	}
	data, err := readImage(body)
	if err != nil {
		return store.FirmwareImage{}, false, err
	}
	digest := sha256.Sum256(data)
	c.detail = "digest=" + hex.EncodeToString(digest[:])
	img, err := Check(data, p.Firmware)
	if err != nil {
		return store.FirmwareImage{}, false, err
	}
	h := img.Header()
	c.detail += " version=" + h.Version.String() + " counter=" + strconv.FormatUint(uint64(h.SecurityCounter), 10)
	rec := store.FirmwareImage{Digest: digest, ProductID: p.ID, Type: h.Type.String(), Version: h.Version.String(),
		SecurityCounter: h.SecurityCounter, Size: int64(len(data)), Encrypted: img.Encrypted(),
		UploadedAt: s.cfg.Now().UTC(), UploadedBy: caller.Actor()}
	for _, sig := range img.Signatures() {
		rec.Signers = append(rec.Signers, sig.Signer())
	}
	// The bytes first: a record never names an image no replica can serve.
	// A blob whose record then fails to be written is only an orphan file,
	// served to nobody.
	if err := s.cfg.Blobs.Put(digest, data); err != nil {
		return store.FirmwareImage{}, false, err
	}
	rec, created, err = s.cfg.Store.PutFirmwareImage(ctx, rec)
	if err != nil {
		return store.FirmwareImage{}, false, err
	}
	if rec.ProductID != p.ID {
		// The same bytes were uploaded for another product: they are one
		// image, and it belongs to the first.
		return store.FirmwareImage{}, false, admin.Errorf(admin.CodeConflict, "this image is in the repository for product %q", rec.ProductID)
	}
	if !created {
		c.detail += " existing"
	}
	return rec, created, nil
}

// readImage reads at most firmware.MaxImageSize bytes; more is
// body-too-large, and the rest is not read.
func readImage(body io.Reader) ([]byte, error) {
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(body, firmware.MaxImageSize+1))
	if err != nil {
		return nil, err
	}
	if n > firmware.MaxImageSize {
		return nil, admin.Errorf(admin.CodeBodyTooLarge, "the image exceeds the limit of %d bytes", firmware.MaxImageSize)
	}
	return buf.Bytes(), nil
}

// Check parses data and makes the checks a device of a product with
// policy p makes before it decrypts: every live root signed (the ROM's
// hybrid AND rule), no lone retired root, a retirement the devices can
// carry out, an application image, and an encrypted payload sealed to the
// product's class key. Refusals are *admin.Error with this package's
// codes.
//
// Initial enrolment firmware (type ief) is refused: it runs once, in the
// factory, booted by the station before the device has an identity; a
// deployed device never installs it, and a repository that served one
// would only offer a way to put a device back into its enrolment mode.
func Check(data []byte, p store.FirmwarePolicy) (*firmware.Image, error) {
	if len(p.Roots) == 0 {
		return nil, refusef(CodeNoPolicy, "the product has no firmware root keys; set them with hallmark admin product update --firmware-root")
	}
	img, err := firmware.Parse(data)
	if err != nil {
		return nil, refusal(err, nil, nil)
	}
	policy := firmware.Policy{RootKeyHashes: p.Roots, Retired: firmware.SlotMask(p.Retired)}
	var live [][32]byte
	for i, r := range p.Roots {
		if !policy.Retired.Has(i) {
			live = append(live, r)
		}
	}
	if _, err := firmware.VerifyEnvelope(img, policy); err != nil {
		return nil, refusal(err, img, live)
	}
	h := img.Header()
	if h.Type != firmware.TypeApplication {
		return nil, refusef(CodeWrongType, "a %s image; the repository holds application images only (initial enrolment firmware runs in the factory)", h.Type)
	}
	if e := h.Encryption; e != nil {
		switch {
		case p.ClassKey == [32]byte{}:
			return nil, refusef(CodeWrongRecipient, "the image is encrypted and the product has no device-class key; set one with --class-key")
		case e.Recipient != p.ClassKey:
			return nil, refusef(CodeWrongRecipient, "the image is encrypted to class key %x…, the product's is %x…", e.Recipient[:8], p.ClassKey[:8])
		}
	}
	return img, nil
}

// List returns a page of image records by digest.
func (s *Service) List(ctx context.Context, caller admin.Caller, f store.FirmwareFilter) (_ []store.FirmwareImage, err error) {
	c := &call{caller: caller, action: ActionList, subject: caller.Route}
	defer func() { err = s.finish(ctx, c, err) }()
	return s.cfg.Store.ListFirmwareImages(ctx, f)
}

// Get returns one image's record.
func (s *Service) Get(ctx context.Context, caller admin.Caller, digest [32]byte) (_ store.FirmwareImage, err error) {
	c := &call{caller: caller, action: ActionGet, subject: "firmware:" + hex.EncodeToString(digest[:])}
	defer func() { err = s.finish(ctx, c, err) }()
	img, err := s.cfg.Store.GetFirmwareImage(ctx, digest)
	if errors.Is(err, store.ErrNotFound) {
		return store.FirmwareImage{}, admin.Errorf(admin.CodeNotFound, "no firmware image %x", digest)
	}
	return img, err
}

// Download opens the image of digest for the device that presented leaf,
// a client certificate mutual TLS verified. The device must be allowed to
// use its certificate (Authenticator's errors pass through) and belong to
// the image's product; any other image is ErrNotFound. The caller closes
// the file.
func (s *Service) Download(ctx context.Context, leaf *x509.Certificate, digest [32]byte, addr string) (store.FirmwareImage, *os.File, error) {
	if s.cfg.Devices == nil {
		return store.FirmwareImage{}, nil, errors.New("firmwarerepo: no device authenticator")
	}
	id, err := s.cfg.Devices.AuthenticateDevice(ctx, leaf, ActionDownload, addr)
	if err != nil {
		return store.FirmwareImage{}, nil, err
	}
	dev, err := s.cfg.Store.GetDevice(ctx, id)
	if err != nil {
		return store.FirmwareImage{}, nil, fmt.Errorf("firmware download: device %s: %w", id, err)
	}
	img, err := s.cfg.Store.GetFirmwareImage(ctx, digest)
	if errors.Is(err, store.ErrNotFound) || (err == nil && img.ProductID != dev.ProductID) {
		return store.FirmwareImage{}, nil, ErrNotFound
	}
	if err != nil {
		return store.FirmwareImage{}, nil, err
	}
	f, err := s.cfg.Blobs.Open(digest)
	if err != nil {
		// A record without its bytes: the data directory is not shared
		// as it should be, or was restored without its blobs.
		s.cfg.Log.Error("firmware image recorded but not stored", "digest", hex.EncodeToString(digest[:]), "error", err)
		return store.FirmwareImage{}, nil, err
	}
	return img, f, nil
}
