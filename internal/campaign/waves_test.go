package campaign

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

func TestParseWaves(t *testing.T) {
	for _, c := range []struct {
		spec string
		want string // the steps as String joins them; "" for a refusal
	}{
		{"100%", "100%"},
		{"10,25%,100%", "10,25%,100%"},
		{"1,2,3", "1,2,3"},
		{"5%,10,50%,1000", "5%,10,50%,1000"},
		{"100000", "100000"},
		{"", ""},
		{"10,", ""},
		{",10", ""},
		{"10 ,100%", ""},
		{"0,100%", ""},
		{"010,100%", ""},
		{"-5,100%", ""},
		{"+5,100%", ""},
		{"1.5,100%", ""},
		{"10,10,100%", ""},
		{"20,10,100%", ""},
		{"50%,25%,100%", ""},
		{"0%", ""},
		{"101%", ""},
		{"50%", ""},
		{"100%,100%", ""},
		{"100%,5", ""},
		{"100001", ""},
		{"10%%", ""},
		{strings.Repeat("1,", 20) + "100%", ""},
	} {
		steps, err := ParseWaves(c.spec)
		if c.want == "" {
			if err == nil || !errors.Is(err, ErrInvalid) {
				t.Errorf("ParseWaves(%q) = %v, %v; want ErrInvalid", c.spec, steps, err)
			}
			continue
		}
		if err != nil || waveSpec(steps) != c.want {
			t.Errorf("ParseWaves(%q) = %v, %v; want %s", c.spec, steps, err, c.want)
		}
	}
}

func TestResolve(t *testing.T) {
	for _, c := range []struct {
		spec string
		n    int
		want []int
	}{
		{"100%", 7, []int{7}},
		{"10,25%,100%", 100, []int{10, 15, 75}},
		{"10,25%,100%", 20, []int{10, 10}},            // 25% of 20 is 5, below the 10 reached: dropped
		{"10%,100%", 15, []int{2, 13}},                // 1.5 rounds up
		{"1%,5%,100%", 3, []int{1, 2}},                // 1% and 5% of 3 are both 1
		{"1,50%,100%", 6, []int{1, 2, 3}},             // the HTTPS test's waves
		{"50,100%", 10, []int{10}},                    // a count beyond the target is capped
		{"5,500", 300, []int{5, 295}},                 // a last count covering the target
		{"5%,10,50%,1000", 1000, []int{50, 450, 500}}, // 10 after 50 adds nothing
	} {
		steps, err := ParseWaves(c.spec)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Resolve(steps, c.n)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("Resolve(%q, %d) = %v, %v; want %v", c.spec, c.n, got, err, c.want)
		}
		sum := 0
		for _, s := range got {
			sum += s
		}
		if sum != c.n {
			t.Errorf("Resolve(%q, %d) covers %d devices", c.spec, c.n, sum)
		}
	}
	steps, _ := ParseWaves("5,10")
	if _, err := Resolve(steps, 20); !errors.Is(err, ErrInvalid) {
		t.Errorf("waves that stop at 10 of 20: %v", err)
	}
	if _, err := Resolve(steps, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("an empty target: %v", err)
	}
}

func TestHaltRule(t *testing.T) {
	for _, c := range []struct {
		rule                   HaltRule
		size, finished, failed int
		trips                  bool
	}{
		{HaltRule{0.2, 5}, 100, 4, 4, false},   // below the minimum
		{HaltRule{0.2, 5}, 100, 5, 1, false},   // 20% is not more than 20%
		{HaltRule{0.2, 5}, 100, 5, 2, true},    // 40%
		{HaltRule{0.2, 5}, 100, 50, 10, false}, // exactly the threshold
		{HaltRule{0.2, 5}, 100, 50, 11, true},
		{HaltRule{0.2, 5}, 2, 2, 1, true},  // a wave smaller than the minimum counts whole
		{HaltRule{0.2, 5}, 2, 1, 1, false}, // ... once all of it finished
		{HaltRule{0, 1}, 10, 1, 1, true},   // any failure
		{HaltRule{0, 1}, 10, 1, 0, false},
		{HaltRule{1, 1}, 10, 10, 10, false}, // never
	} {
		if got := c.rule.Trips(c.size, c.finished, c.failed); got != c.trips {
			t.Errorf("%+v.Trips(%d, %d, %d) = %v", c.rule, c.size, c.finished, c.failed, got)
		}
	}
	for _, bad := range []HaltRule{{-0.1, 5}, {1.1, 5}, {0.2, 0}, {0.2, MaxDevices + 1}} {
		if err := bad.Check(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v.Check() = %v", bad, err)
		}
	}
}

func TestTargetSelect(t *testing.T) {
	id := func(s string) identity.ID { return identity.FromSPKI([]byte(s)) }
	cands := []store.CampaignCandidate{
		{Identity: id("a"), Algorithm: sigalg.ECDSAP256, FirmwareVersion: "1.2.0"},
		{Identity: id("b"), Algorithm: sigalg.ECDSAP256, FirmwareVersion: "1.10.0"},
		{Identity: id("c"), Algorithm: sigalg.Ed25519, FirmwareVersion: ""},
		{Identity: id("d"), Algorithm: sigalg.Ed25519, FirmwareVersion: "banana"},
		{Identity: id("e"), Algorithm: sigalg.Ed25519, FirmwareVersion: "1.9.9-rc.1"},
	}
	got, _ := Target{Product: "p", FirmwareBelow: "1.10"}.Select(cands)
	if !slices.Equal(got, []identity.ID{id("a"), id("e")}) {
		t.Errorf("firmware below 1.10: %v", got)
	}
	got, unmatched := Target{Product: "p", Devices: []identity.ID{id("b"), id("zz"), id("c")}}.Select(cands)
	if !slices.Equal(got, []identity.ID{id("b"), id("c")}) || unmatched != 1 {
		t.Errorf("listed: %v, %d unmatched", got, unmatched)
	}
	for _, bad := range []Target{{}, {Product: "P"}, {Product: "p", Batch: "a b"}, {Product: "p", FirmwareBelow: "x"},
		{Product: "p", Algorithm: "rsa"}, {Product: "p", Devices: []identity.ID{id("a"), id("a")}}} {
		if err := bad.Check(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v.Check() = %v", bad, err)
		}
	}
}

func TestParseDeviceList(t *testing.T) {
	a, b := identity.FromSPKI([]byte("a")), identity.FromSPKI([]byte("b"))
	got, err := ParseDeviceList([]byte("# fleet\n" + a.String() + "\r\n\n  " + b.String() + "  \n"))
	if err != nil || !slices.Equal(got, []identity.ID{a, b}) {
		t.Fatalf("ParseDeviceList = %v, %v", got, err)
	}
	for _, bad := range []string{a.String() + "\n" + a.String(), strings.ToUpper(a.String()), a.String()[:63], "x"} {
		if _, err := ParseDeviceList([]byte(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseDeviceList(%q) = %v", bad, err)
		}
	}
}
