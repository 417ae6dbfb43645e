package monitoring

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// The watch: what a status report, an onboarding or a refused proof shows
// beyond itself (docs/lifecycle.md, "Monitoring"). Signs that two devices
// share one identity become one device.clone_suspected event per device
// per CloneConfig.Every; firmware below the product's minimum becomes one
// firmware.outdated event per version reported and minimum.

// CloneConfig configures the possible-clone signals; zero values are the
// defaults.
type CloneConfig struct {
	// BootTolerance is how far a report's boot time (received − uptime)
	// may fall before the previous report's without a signal: the
	// network's delay and whole-second uptimes move it a little
	// (default 2 minutes).
	BootTolerance time.Duration
	// FailedProofs refused proofs of one registered identity within
	// FailedProofWindow are a signal (default 5 in 10 minutes).
	FailedProofs      int
	FailedProofWindow time.Duration
	// Every is the least time between two clone events of a device
	// (default an hour): two clones reporting in turn would otherwise
	// raise one per report.
	Every time.Duration
	// QueueSize bounds the onboarding outcomes waiting for Run (default
	// 4096); more are dropped and counted (Service.Dropped).
	QueueSize int
}

// Defaults of CloneConfig.
const (
	DefaultBootTolerance     = 2 * time.Minute
	DefaultFailedProofs      = 5
	DefaultFailedProofWindow = 10 * time.Minute
	DefaultCloneEvery        = time.Hour
	DefaultQueueSize         = 4096
)

func (c *CloneConfig) defaults() error {
	if c.BootTolerance < 0 || c.FailedProofs < 0 || c.FailedProofWindow < 0 || c.Every < 0 || c.QueueSize < 0 {
		return errors.New("monitoring: clone settings must not be negative")
	}
	if c.FailedProofs > 1000 {
		return fmt.Errorf("monitoring: %d failed proofs: at most 1000", c.FailedProofs)
	}
	setDefault(&c.BootTolerance, DefaultBootTolerance)
	setDefault(&c.FailedProofWindow, DefaultFailedProofWindow)
	setDefault(&c.Every, DefaultCloneEvery)
	setDefault(&c.FailedProofs, DefaultFailedProofs)
	setDefault(&c.QueueSize, DefaultQueueSize)
	return nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// examine looks at a report just recorded, against the one it replaced
// and its device's product.
func (s *Service) examine(ctx context.Context, st store.DeviceStatus, rec store.StatusRecorded) error {
	var errs []error
	if rec.Previous.Identity == st.Identity {
		if reasons := cloneReasons(rec.Previous, st, s.cfg.Clone.BootTolerance); len(reasons) > 0 {
			errs = append(errs, s.suspectClone(ctx, st.Identity, st.ReceivedAt, strings.Join(reasons, "; ")))
		}
	}
	p, err := s.products.get(ctx, s.cfg.Store, rec.ProductID, s.cfg.Now())
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if p.MinFirmwareVersion != "" && rec.FirmwareNoted != p.MinFirmwareVersion {
		if detail, outdated := firmwareBehind(st.FirmwareVersion, p.MinFirmwareVersion); outdated {
			_, err := s.cfg.Store.NoteFirmwareOutdated(ctx, st.Identity, st.FirmwareVersion, p.MinFirmwareVersion, st.ReceivedAt, detail)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// cloneReasons says what in cur, from the same identity as prev, one
// device could not report. A changed address is not among them: devices
// move between networks (and NAT rewrites them), so it would flag the
// honest fleet and tell nothing a clone could not avoid.
func cloneReasons(prev, cur store.DeviceStatus, tolerance time.Duration) []string {
	var reasons []string
	prevBoot, boot := prev.ReceivedAt.Add(-prev.Uptime), cur.ReceivedAt.Add(-cur.Uptime)
	if back := prevBoot.Sub(boot); back > tolerance {
		reasons = append(reasons, fmt.Sprintf("boot time went back %v (booted %s, the report before booted %s): one device cannot boot earlier than it did",
			back.Round(time.Second), boot.UTC().Format(time.RFC3339), prevBoot.UTC().Format(time.RFC3339)))
	}
	if cur.SecurityCounter < prev.SecurityCounter {
		reasons = append(reasons, fmt.Sprintf("security counter went down from %d to %d: the ROM only ever raises it",
			prev.SecurityCounter, cur.SecurityCounter))
	}
	return reasons
}

// firmwareBehind compares a reported version with a product's minimum:
// below it, or not comparable (reported, never guessed), is outdated.
func firmwareBehind(version, minimum string) (detail string, outdated bool) {
	c, err := CompareVersions(version, minimum)
	switch {
	case errors.Is(err, ErrVersionNotComparable):
		return "reports " + version + ", which cannot be compared with product minimum " + minimum, true
	case err != nil:
		return "", false
	case c < 0:
		return "reports " + version + ", product minimum " + minimum, true
	}
	return "", false
}

// suspectClone adds a clone event unless the device had one recently.
func (s *Service) suspectClone(ctx context.Context, id identity.ID, at time.Time, detail string) error {
	_, err := s.cfg.Store.NoteCloneSuspected(ctx, id, at, s.cfg.Clone.Every, detail)
	return err
}

// feedItem is an onboarding outcome waiting for Run.
type feedItem struct {
	id     identity.ID
	source string
	at     time.Time
	// onboarded: a successful onboarding (again: of a device onboarded
	// already); otherwise a refused proof.
	onboarded, again bool
}

// Onboarded tells the watch that id onboarded from source; again says the
// device was onboarded already, so that another source than the
// onboarding before is a sign of a clone. It never blocks: onboarding
// calls it on the request path.
func (s *Service) Onboarded(id identity.ID, source string, at time.Time, again bool) {
	s.enqueue(feedItem{id: id, source: source, at: at, onboarded: true, again: again})
}

// ProofRefused tells the watch that a proof of possession claiming id was
// refused. It never blocks and does the same for every identity, so that
// it adds nothing to the time of the refusal by which a registered
// identity could be told from an unknown one; Run counts it only if the
// identity is registered.
func (s *Service) ProofRefused(id identity.ID, source string, at time.Time) {
	s.enqueue(feedItem{id: id, source: source, at: at})
}

func (s *Service) enqueue(it feedItem) {
	select {
	case s.feed <- it:
	default:
		s.dropped.Add(1)
	}
}

// Dropped counts the onboarding outcomes dropped because the queue was
// full.
func (s *Service) Dropped() int64 { return s.dropped.Load() }

// runFeed handles the queue until ctx ends.
func (s *Service) runFeed(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case it := <-s.feed:
			if err := s.handle(ctx, it); err != nil && ctx.Err() == nil {
				s.cfg.Log.Warn("monitoring: onboarding outcome", "identity", it.id.String(), "err", err)
			}
		}
	}
}

func (s *Service) handle(ctx context.Context, it feedItem) error {
	if it.onboarded {
		before, err := s.cfg.Store.NoteOnboardingSource(ctx, it.id, it.source, it.at)
		if err != nil || !it.again || before == "" || before == it.source {
			return err
		}
		return s.suspectClone(ctx, it.id, it.at,
			fmt.Sprintf("onboarded again from %s; it onboarded from %s before", it.source, before))
	}
	c := s.cfg.Clone
	n, err := s.cfg.Store.NoteFailedProof(ctx, it.id, it.at, c.FailedProofWindow, c.FailedProofs)
	if err != nil || n < c.FailedProofs {
		return err
	}
	return s.suspectClone(ctx, it.id, it.at, fmt.Sprintf("%d refused proofs of possession within %v, the last from %s",
		n, c.FailedProofWindow, it.source))
}

// productTTL is how long a product read is used: a product's new policy
// reaches reports within it.
const productTTL = 30 * time.Second

// productCache keeps the products, read together (they are few), so that
// a report costs no product read.
type productCache struct {
	mu     sync.Mutex
	byID   map[string]store.Product
	readAt time.Time
}

// get returns product id, reading them all again when the cache is older
// than productTTL or, at most once a second, does not have it.
func (c *productCache) get(ctx context.Context, st Store, id string, now time.Time) (store.Product, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.byID[id]
	age := now.Sub(c.readAt)
	if c.byID != nil && (ok && age >= 0 && age < productTTL || !ok && age >= 0 && age < time.Second) {
		return p, nil
	}
	list, err := st.ListProducts(ctx)
	if err != nil {
		return p, fmt.Errorf("read products: %w", err)
	}
	c.set(list, now)
	return c.byID[id], nil
}

func (c *productCache) set(list []store.Product, now time.Time) {
	c.byID = make(map[string]store.Product, len(list))
	for _, p := range list {
		c.byID[p.ID] = p
	}
	c.readAt = now
}
