package fleet

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// TimingConfig says what ProbeTiming measures, and where.
type TimingConfig struct {
	// BaseURL is the platform. HTTP carries the probes, one at a time, so
	// that one keep-alive connection serves them all (HTTPClient(roots, 1,
	// timeout)); its per-address and per-identity rate limits must let
	// them through.
	BaseURL string
	HTTP    *http.Client
	// Suite is the suite of Known, a registered identity; the unregistered
	// identity compared with it is drawn at random.
	Suite sigalg.Suite
	Known identity.ID
	// SignWith is the suite of the attacker's signatures: Suite if nil.
	// Another suite probes what a registered device's row costs when the
	// signature does not match its key.
	SignWith sigalg.Suite
	// Samples probes of each identity are timed, after Warmup untimed
	// ones of each.
	Samples, Warmup int
	// Group is how many probes the median attacker of the report takes
	// of one identity (20 if zero).
	Group int
}

// TimingReport compares the time a platform takes to refuse a bad proof
// for a registered identity with the time for an unregistered one.
type TimingReport struct {
	Suite    sigalg.ID `json:"suite"`
	SignedBy sigalg.ID `json:"signed_by"`
	Samples  int       `json:"samples"`
	// Medians in microseconds, and known minus unknown.
	KnownMedian   float64 `json:"known_median_us"`
	UnknownMedian float64 `json:"unknown_median_us"`
	Difference    float64 `json:"difference_us"`
	// Test is the rank test of the known latencies against the unknown.
	Test RankTest `json:"mann_whitney"`
	// Group and Accuracy: how often the median of Group probes told the
	// two apart (MedianAttackerAccuracy).
	Group    int     `json:"group"`
	Accuracy float64 `json:"median_attacker_accuracy"`
	// Answer is what every probe got: the status and problem code, the
	// same for both identities, or ProbeTiming fails.
	Answer string `json:"answer"`
	// Known and Unknown are the latencies in microseconds, in probe order.
	Known   []float64 `json:"-"`
	Unknown []float64 `json:"-"`
}

// expectedAnswer is the refusal of a proof signed by the wrong key.
const expectedAnswer = "401 proof-rejected"

// ProbeTiming times the refusal of bad proofs as an attacker who wants to
// learn whether an identity is registered would: each probe asks a fresh
// challenge for the identity (untimed), signs the correct transcript with
// a key of the identity's suite that is not the device's (so the
// signature is well formed and only its verification fails), and times
// the proof request from send to the last byte of the answer. Probes of
// the known and the unknown identity alternate, ABBA, so that drift in
// the machine's load falls on both alike.
func ProbeTiming(ctx context.Context, cfg TimingConfig) (*TimingReport, error) {
	if cfg.HTTP == nil || cfg.Suite == nil || cfg.Samples < 1 || cfg.Warmup < 0 {
		return nil, errors.New("probe timing: a client, a suite and at least one sample are required")
	}
	if cfg.Group == 0 {
		cfg.Group = 20
	}
	if cfg.SignWith == nil {
		cfg.SignWith = cfg.Suite
	}
	p, err := newProber(cfg)
	if err != nil {
		return nil, err
	}
	var unknown identity.ID
	rand.Read(unknown[:])
	rep := &TimingReport{Suite: cfg.Suite.ID(), SignedBy: cfg.SignWith.ID(), Samples: cfg.Samples, Group: cfg.Group, Answer: expectedAnswer,
		Known: make([]float64, 0, cfg.Samples), Unknown: make([]float64, 0, cfg.Samples)}
	for i := range cfg.Warmup + cfg.Samples {
		ids := [2]identity.ID{cfg.Known, unknown}
		if i%2 == 1 {
			ids[0], ids[1] = ids[1], ids[0]
		}
		for _, id := range ids {
			took, err := p.probe(ctx, id)
			if err != nil {
				what := "unknown"
				if id == cfg.Known {
					what = "known"
				}
				return nil, fmt.Errorf("probe timing %s, %s identity: %w", cfg.Suite.ID(), what, err)
			}
			us := float64(took) / float64(time.Microsecond)
			switch {
			case i < cfg.Warmup:
			case id == cfg.Known:
				rep.Known = append(rep.Known, us)
			default:
				rep.Unknown = append(rep.Unknown, us)
			}
		}
	}
	rep.KnownMedian, rep.UnknownMedian = Median(rep.Known), Median(rep.Unknown)
	rep.Difference = rep.KnownMedian - rep.UnknownMedian
	if rep.Test, err = MannWhitney(rep.Known, rep.Unknown); err != nil {
		return nil, err
	}
	rep.Accuracy = MedianAttackerAccuracy(rep.Known, rep.Unknown, cfg.Group)
	return rep, nil
}

// prober makes and sends the probes of one suite.
type prober struct {
	cfg  TimingConfig
	sign func(msg []byte) ([]byte, error) // with the attacker's key
	csr  []byte
}

func newProber(cfg TimingConfig) (*prober, error) {
	key, err := cfg.SignWith.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("probe timing: attacker's key: %w", err)
	}
	p256, err := sigalg.ECDSAP256.Suite()
	if err != nil {
		return nil, fmt.Errorf("probe timing: %w", err)
	}
	op, err := p256.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("probe timing: operational key: %w", err)
	}
	csr, err := pki.CreateCSR(op, "probe")
	if err != nil {
		return nil, fmt.Errorf("probe timing: %w", err)
	}
	return &prober{cfg: cfg, sign: func(msg []byte) ([]byte, error) { return cfg.SignWith.Sign(key, msg) }, csr: csr}, nil
}

// probe asks a challenge for id, answers it with a wrongly keyed proof
// and returns how long the answer took.
func (p *prober) probe(ctx context.Context, id identity.ID) (time.Duration, error) {
	status, body, _, err := p.post(ctx, httpapi.PathOnboardChallenge, onboarding.ChallengeRequest{Identity: id})
	if err != nil {
		return 0, fmt.Errorf("challenge: %w", err)
	}
	var ch onboarding.ChallengeResponse
	if status != http.StatusCreated || json.Unmarshal(body, &ch) != nil {
		return 0, fmt.Errorf("challenge answered %s%s", answerOf(status, body), limitsHint(status))
	}
	raw, err := hex.DecodeString(ch.ChallengeID)
	if err != nil || len(raw) != onboarding.ChallengeIDSize {
		return 0, errors.New("challenge: malformed challenge ID")
	}
	challengeID := [onboarding.ChallengeIDSize]byte(raw)
	sig, err := p.sign(onboarding.ProofMessage(challengeID, ch.Nonce, ch.ServerName, p.csr, id))
	if err != nil {
		return 0, err
	}
	req := onboarding.ProofRequest{ChallengeID: ch.ChallengeID, Identity: id, CSR: p.csr, Signature: sig}
	status, body, took, err := p.post(ctx, httpapi.PathOnboardProof, req)
	if err != nil {
		return 0, fmt.Errorf("proof: %w", err)
	}
	if got := answerOf(status, body); got != expectedAnswer {
		return 0, fmt.Errorf("proof answered %s, want %s%s", got, expectedAnswer, limitsHint(status))
	}
	return took, nil
}

// post sends a JSON request and times it from the send to the last byte
// of the answer; the body is encoded before the clock starts.
func (p *prober) post(ctx context.Context, path string, v any) (int, []byte, time.Duration, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return 0, nil, 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(p.cfg.BaseURL, "/")+path, bytes.NewReader(data))
	if err != nil {
		return 0, nil, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := p.cfg.HTTP.Do(req)
	if err != nil {
		return 0, nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	took := time.Since(start)
	if err != nil {
		return 0, nil, 0, err
	}
	return resp.StatusCode, body, took, nil
}

// limitsHint says what to do about an answer 429.
func limitsHint(status int) string {
	if status != http.StatusTooManyRequests {
		return ""
	}
	return " (the probes need the platform's rate limits off: serve --rate-per-identity -1 --rate-per-address -1)"
}

// answerOf names an answer by its status and problem code.
func answerOf(status int, body []byte) string {
	var problem struct {
		Code string `json:"code"`
	}
	if json.Unmarshal(body, &problem) == nil && problem.Code != "" {
		return fmt.Sprintf("%d %s", status, problem.Code)
	}
	return fmt.Sprintf("%d %s", status, http.StatusText(status))
}
