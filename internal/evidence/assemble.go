package evidence

import (
	"context"
	"crypto"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hallmark-iot/hallmark/internal/audit/chain"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Store is what an export reads: the registry, the device event log and
// the audit chain. Every read is a point read or a bounded page.
type Store interface {
	GetDevice(ctx context.Context, id identity.ID) (store.Device, error)
	ListDevices(ctx context.Context, f store.DeviceFilter) ([]store.Device, error)
	GetBatch(ctx context.Context, id string) (store.Batch, error)
	GetStation(ctx context.Context, id identity.ID) (store.Station, error)
	GetProduct(ctx context.Context, id string) (store.Product, error)
	ListCertificates(ctx context.Context, id identity.ID) ([]store.Certificate, error)
	ListEvents(ctx context.Context, f store.EventFilter) ([]store.DeviceEvent, error)
	GetStatus(ctx context.Context, id identity.ID) (store.DeviceStatus, error)
	ListFirmwareImages(ctx context.Context, f store.FirmwareFilter) ([]store.FirmwareImage, error)
	store.AuditChain
}

// CA is one platform CA's certificates, DER.
type CA struct {
	Name    string
	Issuing []byte
	Root    []byte
}

// Source is everything an export needs.
type Source struct {
	Store Store
	// CAs lists the platform's CAs.
	CAs func() []CA
	// Firmware opens an image file of the firmware repository by digest.
	Firmware func(digest [32]byte) (io.ReadCloser, error)
	// Key is the audit key: it signs the pack.
	Key crypto.Signer
	Now func() time.Time
}

// scope is what an export resolved before it writes a byte.
type scope struct {
	req      Request
	devices  []identity.ID
	batches  []string
	stations []identity.ID
	products []string
}

// Resolve checks that req names something the registry holds and within
// the limits, and returns the subject's canonical name. Export calls it
// first: an unknown device writes nothing.
func (s Source) resolve(ctx context.Context, req Request) (*scope, error) {
	sc := &scope{req: req}
	seenB, seenS, seenP := map[string]bool{}, map[identity.ID]bool{}, map[string]bool{}
	note := func(d store.Device) {
		sc.devices = append(sc.devices, d.Identity)
		if !seenB[d.BatchID] {
			seenB[d.BatchID] = true
			sc.batches = append(sc.batches, d.BatchID)
		}
		if !seenS[d.StationID] {
			seenS[d.StationID] = true
			sc.stations = append(sc.stations, d.StationID)
		}
		if !seenP[d.ProductID] {
			seenP[d.ProductID] = true
			sc.products = append(sc.products, d.ProductID)
		}
	}
	switch req.Scope {
	case ScopeDevice:
		id, err := identity.Parse(req.Subject)
		if err != nil {
			return nil, fmt.Errorf("%w: device: %v", ErrRequest, err)
		}
		d, err := s.Store.GetDevice(ctx, id)
		if err != nil {
			return nil, notFound("device "+id.String(), err)
		}
		note(d)
		return sc, nil
	case ScopeBatch:
		if _, err := s.Store.GetBatch(ctx, req.Subject); err != nil {
			return nil, notFound("batch "+req.Subject, err)
		}
		return sc, s.page(ctx, store.DeviceFilter{BatchID: req.Subject}, note)
	case ScopeProduct:
		if _, err := s.Store.GetProduct(ctx, req.Subject); err != nil {
			return nil, notFound("product "+req.Subject, err)
		}
		return sc, s.page(ctx, store.DeviceFilter{ProductID: req.Subject}, note)
	}
	return nil, fmt.Errorf("%w: want a device, a batch or a product", ErrRequest)
}

func notFound(what string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func (s Source) page(ctx context.Context, f store.DeviceFilter, fn func(store.Device)) error {
	n := 0
	f.Limit = 1000
	for {
		page, err := s.Store.ListDevices(ctx, f)
		if err != nil {
			return fmt.Errorf("list devices: %w", err)
		}
		for _, d := range page {
			if n++; n > MaxDevices {
				return fmt.Errorf("%w: more than %d devices; export batch by batch", ErrTooLarge, MaxDevices)
			}
			fn(d)
		}
		if len(page) < f.Limit {
			return nil
		}
		f.After = page[len(page)-1].Identity
	}
}

// Check resolves req as Export would, without writing: a front door calls
// it before it commits to a response.
func (s Source) Check(ctx context.Context, req Request) error {
	_, err := s.resolve(ctx, req)
	return err
}

// Export writes the pack of req to w. It streams: memory grows with the
// number of members (their names and hashes, for the manifest), not with
// their content. An error after the first byte leaves w holding an
// unsigned, truncated archive, which Verify refuses.
func (s Source) Export(ctx context.Context, req Request, w io.Writer) error {
	sc, err := s.resolve(ctx, req)
	if err != nil {
		return err
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	x := &exporter{src: s, sc: sc, pw: newPackWriter(w, now()), sum: &summary{}}
	return x.run(ctx)
}

type exporter struct {
	src Source
	sc  *scope
	pw  *packWriter
	sum *summary
}

func (x *exporter) run(ctx context.Context) error {
	pack := Pack{Format: Format, Created: x.pw.created, Scope: x.sc.req.Scope, Subject: x.sc.req.Subject, Devices: len(x.sc.devices)}
	if err := x.pw.addJSON(MemberPack, pack); err != nil {
		return err
	}
	keyPEM, err := sigalg.EncodePublicKeyPEM(x.src.Key.Public())
	if err != nil {
		return fmt.Errorf("audit key: %w", err)
	}
	if err := x.pw.add(MemberAuditKey, keyPEM); err != nil {
		return err
	}
	for _, step := range []func(context.Context) error{x.cas, x.registry, x.firmware, x.devices, x.audit} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	if err := x.pw.add(MemberSummary, x.sum.render(pack)); err != nil {
		return err
	}
	return x.pw.finish(x.src.Key)
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func (x *exporter) cas(context.Context) error {
	for _, ca := range x.src.CAs() {
		if err := x.pw.add("ca/"+ca.Name+"-root.pem", pemCert(ca.Root)); err != nil {
			return err
		}
		if err := x.pw.add("ca/"+ca.Name+"-issuing.pem", pemCert(ca.Issuing)); err != nil {
			return err
		}
		x.sum.cas++
	}
	return nil
}

func (x *exporter) registry(ctx context.Context) error {
	for _, id := range x.sc.stations {
		st, err := x.src.Store.GetStation(ctx, id)
		if err != nil {
			return fmt.Errorf("station %s: %w", id, err)
		}
		rec := StationRecord{ID: st.ID.String(), Name: st.Name, Algorithm: string(st.Algorithm), PublicKey: st.PublicKey, CreatedAt: st.CreatedAt.UTC()}
		if err := x.pw.addJSON("stations/"+st.ID.String()+".json", rec); err != nil {
			return err
		}
	}
	for _, id := range x.sc.products {
		p, err := x.src.Store.GetProduct(ctx, id)
		if err != nil {
			return fmt.Errorf("product %s: %w", id, err)
		}
		rec := ProductRecord{ID: p.ID, Name: p.Name, IssuingCA: p.IssuingCA, MinFirmwareVersion: p.MinFirmwareVersion,
			RequireLocked: p.RequireLocked, RetiredSlots: p.Firmware.Retired, FirmwareRoots: []string{}, CreatedAt: p.CreatedAt.UTC()}
		for _, r := range p.Firmware.Roots {
			rec.FirmwareRoots = append(rec.FirmwareRoots, hex.EncodeToString(r[:]))
		}
		if p.Firmware.ClassKey != ([32]byte{}) {
			rec.ClassKey = hex.EncodeToString(p.Firmware.ClassKey[:])
		}
		if err := x.pw.addJSON("products/"+p.ID+".json", rec); err != nil {
			return err
		}
	}
	for _, name := range x.sc.batches {
		b, err := x.src.Store.GetBatch(ctx, name)
		if err != nil {
			return fmt.Errorf("batch %s: %w", name, err)
		}
		rec := BatchRecord{ID: b.ID, Station: b.StationID.String(), Product: b.ProductID,
			ManifestDigest: hex.EncodeToString(b.ManifestDigest[:]), DeviceCount: b.DeviceCount, ImportedAt: b.ImportedAt.UTC()}
		if err := x.pw.addJSON("batches/"+b.ID+".json", rec); err != nil {
			return err
		}
	}
	return nil
}

func (x *exporter) firmware(ctx context.Context) error {
	for _, product := range x.sc.products {
		f := store.FirmwareFilter{ProductID: product, Limit: MaxFirmwarePerProduct + 1}
		imgs, err := x.src.Store.ListFirmwareImages(ctx, f)
		if err != nil {
			return fmt.Errorf("list firmware of %s: %w", product, err)
		}
		if len(imgs) > MaxFirmwarePerProduct {
			x.sum.notes = append(x.sum.notes, fmt.Sprintf("Product %s has more than %d firmware images; the first %d by digest are included.",
				product, MaxFirmwarePerProduct, MaxFirmwarePerProduct))
			imgs = imgs[:MaxFirmwarePerProduct]
		}
		for _, img := range imgs {
			if err := x.image(img); err != nil {
				return err
			}
		}
	}
	return nil
}

func (x *exporter) image(img store.FirmwareImage) error {
	d := hex.EncodeToString(img.Digest[:])
	rec := FirmwareRecord{Digest: d, Product: img.ProductID, Type: img.Type, Version: img.Version, SecurityCounter: img.SecurityCounter,
		Size: img.Size, Encrypted: img.Encrypted, UploadedAt: img.UploadedAt.UTC(), UploadedBy: img.UploadedBy, Signers: []string{}}
	for _, s := range img.Signers {
		rec.Signers = append(rec.Signers, s.String())
	}
	if err := x.pw.addJSON("firmware/"+d+".json", rec); err != nil {
		return err
	}
	r, err := x.src.Firmware(img.Digest)
	if err != nil {
		return fmt.Errorf("firmware image %s: %w", d, err)
	}
	defer r.Close()
	x.sum.firmware++
	return x.pw.addStream("firmware/"+d+".img", img.Size, r)
}

// subjects are the audit subjects of the pack: its devices (as admin
// calls name them, "device:<id>", and as the device's own calls do, the
// bare identity) and its batches.
func (x *exporter) subjects() map[string]bool {
	m := make(map[string]bool, 2*len(x.sc.devices)+len(x.sc.batches))
	for _, id := range x.sc.devices {
		m["device:"+id.String()] = true
		m[id.String()] = true
	}
	for _, b := range x.sc.batches {
		m["batch:"+b] = true
	}
	return m
}

// audit writes each chained entry about the pack's subjects with its
// proof. One scan of the chain finds their positions (only positions are
// kept); chain.BuildProof then reads from each position to the checkpoint
// that covers it.
func (x *exporter) audit(ctx context.Context) error {
	subjects := x.subjects()
	limit := MaxAuditPerDevice * max(len(x.sc.devices), 1)
	var positions []int64
	unsealed := 0
	err := x.src.Store.ScanAuditChain(ctx, 0, func(r store.ChainRecord) error {
		if r.Missing || !subjects[r.Event.Subject] {
			return nil
		}
		if r.Link.Pos == 0 {
			unsealed++
			return nil
		}
		if len(positions) >= limit {
			return fmt.Errorf("%w: more than %d audit entries", ErrTooLarge, limit)
		}
		positions = append(positions, r.Link.Pos)
		return nil
	})
	if err != nil {
		return fmt.Errorf("scan audit chain: %w", err)
	}
	uncovered := 0
	for _, pos := range positions {
		p, err := chain.BuildProof(ctx, x.src.Store, pos)
		if errors.Is(err, chain.ErrNoProof) {
			uncovered++
			continue
		}
		if err != nil {
			return err
		}
		if err := x.pw.addJSON(fmt.Sprintf("audit/%012d.json", pos), proofRecord(p)); err != nil {
			return err
		}
		x.sum.audit++
	}
	if n := unsealed + uncovered; n > 0 {
		x.sum.notes = append(x.sum.notes, fmt.Sprintf("%d audit entries about these subjects are not yet covered by a signed checkpoint "+
			"and are not in the pack; export again after the next checkpoint (about 10 s).", n))
	}
	return nil
}

func (x *exporter) devices(ctx context.Context) error {
	for _, id := range x.sc.devices {
		if err := x.device(ctx, id); err != nil {
			return fmt.Errorf("device %s: %w", id, err)
		}
	}
	return nil
}

func (x *exporter) device(ctx context.Context, id identity.ID) error {
	d, err := x.src.Store.GetDevice(ctx, id)
	if err != nil {
		return err
	}
	dir := "devices/" + id.String() + "/"
	rec := DeviceRecord{Identity: id.String(), Algorithm: string(d.Algorithm), PublicKey: d.PublicKey, RootOfTrust: d.RootOfTrust,
		Injection: d.Injection, Locks: d.Locks, Batch: d.BatchID, Station: d.StationID.String(), Product: d.ProductID,
		State: string(d.State), CreatedAt: d.CreatedAt.UTC(), OnboardedAt: d.OnboardedAt.UTC(), RevokedAt: d.RevokedAt.UTC(),
		StateChangedAt: d.StateChangedAt.UTC(), StateReason: d.StateReason}
	if err := x.pw.addJSON(dir+"device.json", rec); err != nil {
		return err
	}
	certs, err := x.src.Store.ListCertificates(ctx, id)
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	recs := make([]CertificateRecord, 0, len(certs))
	for _, c := range certs {
		serial := hex.EncodeToString(c.Serial[:])
		recs = append(recs, CertificateRecord{Serial: serial, NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(), IssuedAt: c.IssuedAt.UTC(),
			RevokedAt: c.RevokedAt.UTC(), RevocationReason: c.RevocationReason, SupersededAt: c.SupersededAt.UTC()})
		if err := x.pw.add(dir+"cert-"+serial+".pem", pemCert(c.DER)); err != nil {
			return err
		}
		x.sum.certs++
	}
	if err := x.pw.addJSON(dir+"certificates.json", recs); err != nil {
		return err
	}
	if err := x.events(ctx, id, dir); err != nil {
		return err
	}
	st, err := x.src.Store.GetStatus(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("status: %w", err)
	}
	x.sum.statuses++
	return x.pw.addJSON(dir+"status.json", StatusRecord{ReceivedAt: st.ReceivedAt.UTC(), FirmwareVersion: st.FirmwareVersion,
		SecurityCounter: st.SecurityCounter, BootResult: st.BootResult, EnrolmentAlgorithm: string(st.EnrolmentAlgorithm),
		OperationalAlgorithm: string(st.OperationalAlgorithm), UptimeSeconds: int64(st.Uptime.Seconds())})
}

// events writes the device's event log as JSON lines, a page at a time.
func (x *exporter) events(ctx context.Context, id identity.ID, dir string) error {
	var b strings.Builder
	f := store.EventFilter{Identity: id, Limit: 1000}
	for {
		page, err := x.src.Store.ListEvents(ctx, f)
		if err != nil {
			return fmt.Errorf("events: %w", err)
		}
		for _, e := range page {
			rec := EventRecord{Seq: e.Seq, Time: e.Time.UTC(), Kind: string(e.Kind), Detail: e.Detail}
			if e.Serial != ([16]byte{}) {
				rec.Serial = hex.EncodeToString(e.Serial[:])
			}
			if err := writeJSONLine(&b, rec); err != nil {
				return err
			}
			x.sum.events++
		}
		if b.Len() > MaxSmallMember-4096 {
			return fmt.Errorf("%w: the event log of one device exceeds %d bytes", ErrTooLarge, MaxSmallMember)
		}
		if len(page) < f.Limit {
			break
		}
		f.AfterSeq = page[len(page)-1].Seq
	}
	return x.pw.add(dir+"events.jsonl", []byte(b.String()))
}
