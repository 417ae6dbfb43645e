package sqlite

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hallmark-iot/hallmark/internal/store"
)

// Challenges live in memory, not in the file. A challenge lives for
// minutes and is used once; losing them all in a crash or restart only
// makes devices ask again (a lost challenge cannot be answered, used or
// not). Kept in the file they cost two of an onboarding's three writes on
// SQLite's one writer. The price: the SQLite backend serves one process
// (the platform holds its data directory's lock; replicas use
// PostgreSQL, whose challenges table is unlogged for the same reason).

type challengeMap struct {
	mu sync.Mutex
	m  map[[16]byte]store.Challenge
}

// CreateChallenge stores a fresh challenge; a taken ID is store.ErrExists.
// The identity need not be registered: the protocol answers unknown
// identities exactly like known ones.
func (s *Store) CreateChallenge(ctx context.Context, c store.Challenge) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlite: create challenge: %w", err)
	}
	c = normalizeChallenge(c)
	s.challenges.mu.Lock()
	defer s.challenges.mu.Unlock()
	if _, taken := s.challenges.m[c.ID]; taken {
		return fmt.Errorf("sqlite: create challenge: %w", store.ErrExists)
	}
	s.challenges.m[c.ID] = c
	return nil
}

// normalizeChallenge keeps times as the file did: microseconds, UTC.
func normalizeChallenge(c store.Challenge) store.Challenge {
	c.IssuedAt = fromMicros(micros(c.IssuedAt))
	c.ExpiresAt = fromMicros(micros(c.ExpiresAt))
	if !c.UsedAt.IsZero() {
		c.UsedAt = fromMicros(micros(c.UsedAt))
	}
	return c
}

// ConsumeChallenge marks the challenge used at now and returns it; of
// concurrent calls exactly one succeeds. A challenge is expired once now
// reaches ExpiresAt; an expired one stays unused.
func (s *Store) ConsumeChallenge(ctx context.Context, id [16]byte, now time.Time) (store.Challenge, error) {
	if err := ctx.Err(); err != nil {
		return store.Challenge{}, fmt.Errorf("sqlite: consume challenge: %w", err)
	}
	c, err := s.challenges.consume(id, now)
	if err != nil {
		return store.Challenge{}, fmt.Errorf("sqlite: consume challenge: %w", err)
	}
	return c, nil
}

func (cm *challengeMap) consume(id [16]byte, now time.Time) (store.Challenge, error) {
	cm.mu.Lock()
	defer cm.mu.Unlock()
	c, ok := cm.m[id]
	switch {
	case !ok:
		return store.Challenge{}, fmt.Errorf("challenge %x: %w", id, store.ErrNotFound)
	case !c.UsedAt.IsZero():
		return store.Challenge{}, store.ErrChallengeUsed
	case micros(now) >= micros(c.ExpiresAt):
		return store.Challenge{}, store.ErrChallengeExpired
	}
	c.UsedAt = fromMicros(micros(now))
	cm.m[id] = c
	return c, nil
}

// unconsume gives back a challenge whose consuming transaction failed.
func (cm *challengeMap) unconsume(id [16]byte) {
	cm.mu.Lock()
	defer cm.mu.Unlock()
	if c, ok := cm.m[id]; ok {
		c.UsedAt = time.Time{}
		cm.m[id] = c
	}
}

// GetChallenge returns a challenge without changing it.
func (s *Store) GetChallenge(ctx context.Context, id [16]byte) (store.Challenge, error) {
	if err := ctx.Err(); err != nil {
		return store.Challenge{}, fmt.Errorf("sqlite: get challenge: %w", err)
	}
	s.challenges.mu.Lock()
	defer s.challenges.mu.Unlock()
	c, ok := s.challenges.m[id]
	if !ok {
		return store.Challenge{}, fmt.Errorf("sqlite: challenge %x: %w", id, store.ErrNotFound)
	}
	return c, nil
}

// DeleteExpiredChallenges removes challenges, used or not, whose expiry is
// before the given time, and returns how many.
func (s *Store) DeleteExpiredChallenges(ctx context.Context, before time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("sqlite: delete expired challenges: %w", err)
	}
	s.challenges.mu.Lock()
	defer s.challenges.mu.Unlock()
	n := 0
	for id, c := range s.challenges.m {
		if micros(c.ExpiresAt) < micros(before) {
			delete(s.challenges.m, id)
			n++
		}
	}
	return n, nil
}
