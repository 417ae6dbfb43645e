package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/sigalg/sigalgtest"
)

// lockoutTally counts an attacker's answers by status.
type lockoutTally struct {
	sent, limited atomic.Int64
}

// lockoutClaim sends what an attacker who knows only a device's identity
// can: a challenge for it, then a proof claiming it, signed by a key that
// is not the device's.
func lockoutClaim(ctx context.Context, c *http.Client, url string, id identity.ID, csr []byte, tally *lockoutTally) {
	post := func(path string, v any) []byte {
		body, _ := json.Marshal(v)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+path, bytes.NewReader(body))
		if err != nil {
			return nil
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		tally.sent.Add(1)
		if resp.StatusCode == http.StatusTooManyRequests {
			tally.limited.Add(1)
		}
		return data
	}
	var ch onboarding.ChallengeResponse
	if json.Unmarshal(post(httpapi.PathOnboardChallenge, onboarding.ChallengeRequest{Identity: id}), &ch) != nil || ch.ChallengeID == "" {
		var random [onboarding.ChallengeIDSize]byte
		rand.Read(random[:])
		ch.ChallengeID = hex.EncodeToString(random[:])
	}
	sig := make([]byte, 64)
	rand.Read(sig)
	post(httpapi.PathOnboardProof, onboarding.ProofRequest{ChallengeID: ch.ChallengeID, Identity: id, CSR: csr, Signature: sig})
}

// Item 4 of issue 10: identities are public, and strangers claiming a
// device's identity from other addresses, as fast as the limits let them
// and faster, must not keep the device from onboarding from its own.
func TestAttackClaimedIdentityDoesNotLockDeviceOut(t *testing.T) {
	t.Parallel()
	p := start(t, newDataDir(t), sigalg.ECDSAP256) // default rate limits
	f := newFleet(t, sigalg.Ed25519)
	f.register(t, adminClient(t, p))
	victim := f.ids[0]
	op := sigalgtest.Suite(t, sigalg.ECDSAP256)
	opKey, _ := op.GenerateKey(rand.Reader)
	csr, _ := pki.CreateCSR(opKey, victim.String())

	ctx, stop := context.WithCancel(context.Background())
	var attackers sync.WaitGroup
	defer func() { stop(); attackers.Wait() }()
	tallies := map[string]*lockoutTally{}
	burstDone := make(chan struct{}, 3)
	for _, source := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		c, tally := clientFromSource(p, source), &lockoutTally{}
		tallies[source] = tally
		attackers.Go(func() {
			defer c.CloseIdleConnections()
			// More than a burst at once, then a claim every 20 ms: every
			// token the limits refill is taken as soon as it is there.
			for range 15 {
				lockoutClaim(ctx, c, p.URL(), victim, csr, tally)
			}
			burstDone <- struct{}{}
			for ctx.Err() == nil {
				lockoutClaim(ctx, c, p.URL(), victim, csr, tally)
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	for range 3 {
		<-burstDone
	}

	// The device retries from its own address for two refill periods of
	// the per-identity limit (one token every 3 s).
	device := deviceClient(p.URL(), clientFromSource(p, "127.0.0.5"))
	devOp, _ := f.devices[0].OperationalKey(sigalg.ECDSAP256)
	deadline := time.Now().Add(7 * time.Second)
	var err error
	attempts := 0
	for {
		attempts++
		f.locks[0].Lock()
		_, err = device.OnboardWithKey(context.Background(), f.devices[0], victim, devOp)
		f.locks[0].Unlock()
		var problem *httpapi.Problem
		if err == nil || !errors.As(err, &problem) || problem.Code != "rate-limited" || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("the device, retrying %d times from its own address while strangers claimed its identity: %v", attempts, err)
	}
	stop()
	attackers.Wait()
	// The attackers did send past their limits: each was held to its own.
	for source, tally := range tallies {
		if tally.limited.Load() == 0 {
			t.Errorf("attacker at %s: none of %d requests limited", source, tally.sent.Load())
		}
	}
}
