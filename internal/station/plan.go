// Package station owns the provisioning station's workflow: for each device
// of a batch it makes the simulated chip, burns its fuses, programs and
// boots the initial enrolment firmware, injects a key where the chip cannot
// make one, checks the device's proof of possession, and records it. A
// journal makes a batch survive a killed station without losing or
// duplicating a device; the batch ends in a manifest signed by the station
// key (the format belongs to internal/manifest).
package station

import (
	"fmt"
	"strings"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Kind is one kind of device a batch makes: a root of trust, an algorithm,
// and for inject chips whether the bootloader offers the encrypted channel
// and of which scheme. The plan is written into the batch directory, so
// the channel every device was programmed over is on record there.
type Kind struct {
	Class     device.Class `json:"class"`
	Algorithm sigalg.ID    `json:"algorithm"`
	Channel   bool         `json:"encrypted_channel,omitempty"`
	// Transport is the channel's scheme; empty is device.DefaultTransport
	// (HPKE X-Wing), so plans written before channels had a choice read
	// as they did.
	Transport device.Transport `json:"transport,omitempty"`
}

// String names the kind as the command line spells it: puf, keygen,
// inject (encrypted channel, the default scheme), inject:SCHEME or
// inject-clear, then the suite.
func (k Kind) String() string {
	return k.classLabel() + "/" + string(k.Algorithm)
}

func (k Kind) classLabel() string {
	switch {
	case k.Class == device.ClassInject && !k.Channel:
		return "inject-clear"
	case k.Transport != "":
		return string(k.Class) + ":" + string(k.Transport)
	}
	return string(k.Class)
}

// ClassLabels are the class names a plan makes by default. A plan also
// accepts tpm, and inject:SCHEME for inject chips whose encrypted channel
// uses another scheme than the default (device.ParseTransport: for
// example inject:p256-ecdh, the channel a PKCS #11 key store wraps to
// inside its token).
var ClassLabels = []string{"puf", "keygen", "inject", "inject-clear"}

// Plan is the kinds a batch cycles through: device i is of kind
// Kinds[i % len(Kinds)], so any count mixes the kinds evenly.
type Plan struct {
	Kinds []Kind `json:"kinds"`
}

// NewPlan crosses class labels with suites.
func NewPlan(classes, algorithms []string) (Plan, error) {
	var p Plan
	if len(classes) == 0 || len(algorithms) == 0 {
		return p, fmt.Errorf("plan: need at least one class and one algorithm")
	}
	seen := map[Kind]bool{}
	for _, c := range classes {
		kind, err := parseClassLabel(strings.TrimSpace(c))
		if err != nil {
			return p, err
		}
		for _, a := range algorithms {
			suite, err := sigalg.Lookup(a)
			if err != nil {
				return p, fmt.Errorf("plan: %w", err)
			}
			if kind.Class == device.ClassTPM && suite.ID() != sigalg.ECDSAP256 {
				return p, fmt.Errorf("plan: a tpm device's keys are %s (TPM 2.0 has no %s)", sigalg.ECDSAP256, suite.ID())
			}
			kind.Algorithm = suite.ID()
			if seen[kind] {
				return p, fmt.Errorf("plan: %s named twice", kind)
			}
			seen[kind] = true
			p.Kinds = append(p.Kinds, kind)
		}
	}
	return p, nil
}

func parseClassLabel(label string) (Kind, error) {
	switch label {
	case "puf", "keygen", "tpm": // tpm needs Config.TPM, so it is not among the default ClassLabels
		return Kind{Class: device.Class(label)}, nil
	case "inject":
		return Kind{Class: device.ClassInject, Channel: true}, nil
	case "inject-clear":
		return Kind{Class: device.ClassInject}, nil
	}
	if scheme, ok := strings.CutPrefix(label, "inject:"); ok {
		t, err := device.ParseTransport(scheme)
		if err != nil {
			return Kind{}, fmt.Errorf("plan: %w", err)
		}
		if t == device.DefaultTransport {
			t = "" // the same kind as plain "inject"
		}
		return Kind{Class: device.ClassInject, Channel: true, Transport: t}, nil
	}
	return Kind{}, fmt.Errorf("plan: device class %q (want %s, inject:SCHEME or tpm)", label, strings.Join(ClassLabels, ", "))
}

// KindOf returns the kind of device seq.
func (p Plan) KindOf(seq int) Kind { return p.Kinds[seq%len(p.Kinds)] }
