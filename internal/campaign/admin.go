package campaign

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"unicode"
	"unicode/utf8"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/ota"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// IDPattern is a campaign's ID: "cmp_" and 16 random hex characters, so
// that one campaign's ID does not tell another's.
var IDPattern = regexp.MustCompile(`^cmp_[0-9a-f]{16}$`)

// CreateRequest creates a campaign.
type CreateRequest struct {
	Target Target
	// Image is the SHA-256 of the image file, 64 lowercase hex.
	Image string
	// Waves is a wave specification (ParseWaves); "" is DefaultWaves.
	Waves string
	// Halt is the halt rule; a zero MinFinished is DefaultHaltMin. A
	// nil HaltAt is DefaultHaltThreshold.
	HaltAt          *float64
	HaltMinFinished int
	// MigrateTo, when set, makes a migration campaign to that suite.
	MigrateTo sigalg.ID
}

// Created is what a creation did.
type Created struct {
	Progress
	// Unmatched counts listed devices left out: not onboarded devices of
	// the product matching the other criteria. Busy counts devices left
	// out because an open campaign targets them already.
	Unmatched, Busy int
}

// Progress is a campaign with its devices counted.
type Progress struct {
	Campaign store.Campaign
	// Counts are the devices by state, overall and per wave.
	Counts map[ota.DeviceState]int
	Waves  []WaveProgress
}

// WaveProgress is one wave's counts.
type WaveProgress struct {
	Size, Finished, Failed int
	// Open says the wave's devices may be offered the update.
	Open   bool
	Counts map[ota.DeviceState]int
}

func (req CreateRequest) rule() HaltRule {
	h := HaltRule{Threshold: DefaultHaltThreshold, MinFinished: req.HaltMinFinished}
	if req.HaltAt != nil {
		h.Threshold = *req.HaltAt
	}
	if h.MinFinished == 0 {
		h.MinFinished = DefaultHaltMin
	}
	return h
}

// check validates everything the request says by itself.
func (req CreateRequest) check() ([]WaveStep, [32]byte, error) {
	var digest [32]byte
	if err := req.Target.Check(); err != nil {
		return nil, digest, err
	}
	if raw, err := hex.DecodeString(req.Image); err != nil || len(raw) != 32 || hex.EncodeToString(raw) != req.Image {
		return nil, digest, fmt.Errorf("%w: image must be the image's SHA-256, 64 lowercase hex characters", ErrInvalid)
	} else {
		copy(digest[:], raw)
	}
	spec := req.Waves
	if spec == "" {
		spec = DefaultWaves
	}
	steps, err := ParseWaves(spec)
	if err != nil {
		return nil, digest, err
	}
	if err := req.rule().Check(); err != nil {
		return nil, digest, err
	}
	if req.MigrateTo != "" {
		if _, err := req.MigrateTo.Suite(); err != nil {
			return nil, digest, fmt.Errorf("%w: migrate_to %q is not a known suite", ErrInvalid, req.MigrateTo)
		}
		if req.MigrateTo == req.Target.Algorithm {
			return nil, digest, fmt.Errorf("%w: devices of %s cannot migrate to %s", ErrInvalid, req.Target.Algorithm, req.MigrateTo)
		}
	}
	return steps, digest, nil
}

// newID returns a fresh campaign ID.
func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return "cmp_" + hex.EncodeToString(b[:])
}

// Create checks the request, resolves its target into devices once (the
// onboarded devices of the product matching it, less those an open
// campaign targets), shuffles them into its waves and stores it running.
func (s *Service) Create(ctx context.Context, caller admin.Caller, req CreateRequest) (out Created, err error) {
	subject, detail := caller.Route, ""
	defer func() { err = s.finish(ctx, caller, ActionCreate, subject, detail, err) }()
	steps, digest, err := req.check()
	if err != nil {
		return out, err
	}
	if _, err := s.cfg.Store.GetProduct(ctx, req.Target.Product); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return out, admin.Errorf(admin.CodeUnknownProduct, "no product %q", req.Target.Product)
		}
		return out, err
	}
	img, err := s.cfg.Images.GetFirmwareImage(ctx, digest)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return out, admin.Errorf(admin.CodeNotFound, "no firmware image %s in the repository", req.Image)
	case err != nil:
		return out, err
	case img.ProductID != req.Target.Product:
		return out, admin.Errorf(admin.CodeConflict, "image %s is an image of product %q, not %q", req.Image, img.ProductID, req.Target.Product)
	}
	candidates, err := s.cfg.Store.CampaignCandidates(ctx, req.Target.Filter())
	if err != nil {
		return out, err
	}
	ids, unmatched := req.Target.Select(candidates)
	if len(ids) > MaxDevices {
		return out, fmt.Errorf("%w: the target holds %d devices, more than %d: narrow it (batch, firmware_below, algorithm, devices) or run several campaigns",
			ErrInvalid, len(ids), MaxDevices)
	}
	if err := s.Refresh(ctx); err != nil {
		return out, err
	}
	ids, busy := without(ids, s.view.busy(), req.MigrateTo, candidates)
	template := store.Campaign{ProductID: req.Target.Product, MigrateTo: req.MigrateTo,
		Image:  store.CampaignImage{Digest: digest, Version: img.Version, Size: img.Size, SecurityCounter: img.SecurityCounter},
		Target: req.Target.String(), WaveSpec: waveSpec(steps), HaltThreshold: req.rule().Threshold, HaltMinFinished: req.rule().MinFinished,
		State: store.CampaignRunning, CreatedBy: caller.Actor()}
	c, sizes, more, err := s.store(ctx, template, steps, ids)
	busy += more
	if err != nil {
		return out, err
	}
	subject = "campaign:" + c.ID
	detail = fmt.Sprintf("image %s to %d devices (%s) in waves %v", req.Image, c.DeviceCount, c.Target, sizes)
	s.offered(c, 0, 0)
	if err := s.Refresh(ctx); err != nil {
		s.cfg.Log.Warn("campaign view", "error", err)
	}
	p, err := s.progress(ctx, c)
	return Created{Progress: p, Unmatched: unmatched, Busy: busy}, err
}

// without removes the devices an open campaign targets, and for a
// migration those enrolled with the target suite already.
func without(ids []identity.ID, busy map[identity.ID]struct{}, migrateTo sigalg.ID, candidates []store.CampaignCandidate) ([]identity.ID, int) {
	var alg map[identity.ID]sigalg.ID
	if migrateTo != "" {
		alg = make(map[identity.ID]sigalg.ID, len(candidates))
		for _, c := range candidates {
			alg[c.Identity] = c.Algorithm
		}
	}
	out := ids[:0]
	n := 0
	for _, id := range ids {
		if _, b := busy[id]; b {
			n++
			continue
		}
		if alg != nil && alg[id] == migrateTo {
			continue
		}
		out = append(out, id)
	}
	return out, n
}

// assign shuffles the devices (crypto/rand: an insider cannot predict
// which devices form the first wave) and deals them into waves.
func assign(ids []identity.ID, sizes []int) []store.CampaignDevice {
	for i := len(ids) - 1; i > 0; i-- {
		j, _ := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		k := int(j.Int64())
		ids[i], ids[k] = ids[k], ids[i]
	}
	out := make([]store.CampaignDevice, 0, len(ids))
	wave, left := 0, sizes[0]
	for _, id := range ids {
		for left == 0 {
			wave++
			left = sizes[wave]
		}
		out = append(out, store.CampaignDevice{Identity: id, Wave: wave, State: string(ota.StatePending)})
		left--
	}
	return out
}

func waveSpec(steps []WaveStep) string {
	out := ""
	for i, st := range steps {
		if i > 0 {
			out += ","
		}
		out += st.String()
	}
	return out
}

// List returns campaigns, newest first.
func (s *Service) List(ctx context.Context, caller admin.Caller, f store.CampaignFilter) (_ []store.Campaign, err error) {
	defer func() { err = s.finish(ctx, caller, ActionList, caller.Route, "", err) }()
	for _, st := range f.States {
		if !validState(st) {
			return nil, fmt.Errorf("%w: state must be one of %v", ErrInvalid, store.CampaignStates)
		}
	}
	return s.cfg.Store.ListCampaigns(ctx, f)
}

func validState(st store.CampaignState) bool {
	for _, k := range store.CampaignStates {
		if k == st {
			return true
		}
	}
	return false
}

// Get returns a campaign with its devices counted by state, overall and
// per wave.
func (s *Service) Get(ctx context.Context, caller admin.Caller, id string) (_ Progress, err error) {
	subject := campaignSubject(caller, id)
	defer func() { err = s.finish(ctx, caller, ActionGet, subject, "", err) }()
	c, err := s.get(ctx, id)
	if err != nil {
		return Progress{}, err
	}
	return s.progress(ctx, c)
}

func campaignSubject(caller admin.Caller, id string) string {
	if IDPattern.MatchString(id) {
		return "campaign:" + id
	}
	return caller.Route
}

func (s *Service) get(ctx context.Context, id string) (store.Campaign, error) {
	if !IDPattern.MatchString(id) {
		return store.Campaign{}, admin.Errorf(admin.CodeNotFound, "no campaign %q", truncate(id))
	}
	c, err := s.cfg.Store.GetCampaign(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return c, admin.Errorf(admin.CodeNotFound, "no campaign %s", id)
	}
	return c, err
}

func truncate(s string) string {
	if len(s) > 24 {
		s = s[:24] + "…"
	}
	return s
}

func (s *Service) progress(ctx context.Context, c store.Campaign) (Progress, error) {
	counts, err := s.cfg.Store.CountCampaignDevices(ctx, c.ID)
	if err != nil {
		return Progress{}, err
	}
	p := Progress{Campaign: c, Counts: map[ota.DeviceState]int{}}
	for i, w := range c.Waves {
		p.Waves = append(p.Waves, WaveProgress{Size: w.Size, Finished: w.Finished, Failed: w.Failed,
			Open: i <= c.CurrentWave, Counts: map[ota.DeviceState]int{}})
	}
	for _, n := range counts {
		p.Counts[ota.DeviceState(n.State)] += n.N
		if n.Wave >= 0 && n.Wave < len(p.Waves) {
			p.Waves[n.Wave].Counts[ota.DeviceState(n.State)] += n.N
		}
	}
	return p, nil
}

// Devices returns a page of a campaign's devices by identity.
func (s *Service) Devices(ctx context.Context, caller admin.Caller, id string, f store.CampaignDeviceFilter) (_ []store.CampaignDevice, err error) {
	subject := campaignSubject(caller, id)
	defer func() { err = s.finish(ctx, caller, ActionDevices, subject, "", err) }()
	if f.State != "" && !validDeviceState(ota.DeviceState(f.State)) {
		return nil, fmt.Errorf("%w: state must be one of %v", ErrInvalid, ota.DeviceStates)
	}
	if _, err := s.get(ctx, id); err != nil {
		return nil, err
	}
	return s.cfg.Store.ListCampaignDevices(ctx, id, f)
}

func validDeviceState(st ota.DeviceState) bool {
	for _, k := range ota.DeviceStates {
		if k == st {
			return true
		}
	}
	return false
}

// MaxReason bounds an administrator's reason.
const MaxReason = 256

// Pause stops new offers; devices under way may finish and report.
func (s *Service) Pause(ctx context.Context, caller admin.Caller, id, reason string) (Progress, error) {
	return s.transition(ctx, caller, id, "pause", ActionPause, reason)
}

// Resume lets a paused campaign offer again.
func (s *Service) Resume(ctx context.Context, caller admin.Caller, id, reason string) (Progress, error) {
	return s.transition(ctx, caller, id, "resume", ActionResume, reason)
}

// Cancel ends a campaign for good: no device is offered the update any
// more, and open assignments are withdrawn (a device's next poll is
// answered 204); reports of devices under way are still recorded.
func (s *Service) Cancel(ctx context.Context, caller admin.Caller, id, reason string) (Progress, error) {
	return s.transition(ctx, caller, id, "cancel", ActionCancel, reason)
}

func (s *Service) transition(ctx context.Context, caller admin.Caller, id, verb, action, reason string) (_ Progress, err error) {
	subject, detail := campaignSubject(caller, id), ""
	defer func() { err = s.finish(ctx, caller, action, subject, detail, err) }()
	if err := checkReason(reason); err != nil {
		return Progress{}, err
	}
	if !IDPattern.MatchString(id) {
		return Progress{}, admin.Errorf(admin.CodeNotFound, "no campaign %q", truncate(id))
	}
	var seen decided
	c, _, err := s.cfg.Store.DecideCampaign(ctx, id, identity.ID{}, stateDecider(verb, reason, s.now(), &seen))
	if errors.Is(err, store.ErrNotFound) {
		return Progress{}, admin.Errorf(admin.CodeNotFound, "no campaign %s", id)
	}
	if err != nil {
		return Progress{}, err
	}
	if c.State == seen.before {
		detail = "already " + string(c.State) + "; nothing changed"
	} else {
		detail = reason
	}
	s.view.update(c)
	s.offeredByTransition(seen, c)
	if err := s.Refresh(ctx); err != nil {
		s.cfg.Log.Warn("campaign view", "error", err)
	}
	return s.progress(ctx, c)
}

func checkReason(v string) error {
	if v == "" || utf8.RuneCountInString(v) > MaxReason || !utf8.ValidString(v) {
		return fmt.Errorf("%w: reason must be 1 to %d characters", ErrInvalid, MaxReason)
	}
	for _, r := range v {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%w: reason must be printable characters only", ErrInvalid)
		}
	}
	return nil
}
