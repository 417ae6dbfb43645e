package monitoring

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

func TestCompareVersions(t *testing.T) {
	// Each is before the next.
	ordered := []string{"0.9", "1.0.0-0", "1.0.0-0.3", "1.0.0-1", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta",
		"1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.2", "1.10",
		"1.10.0.1", "2", "10.0.0", "99999999999999999999999999.1"}
	for i := range ordered {
		for j := range ordered {
			c, err := CompareVersions(ordered[i], ordered[j])
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if c != want {
				t.Errorf("Compare(%s, %s) = %d, want %d", ordered[i], ordered[j], c, want)
			}
		}
	}
	for _, same := range [][2]string{{"1.4", "1.4.0"}, {"1.4.0.0", "1.4"}, {"01.004", "1.4"}, {"1.4.0+build.7", "1.4.0"},
		{"1.0.0-rc.01", "1.0.0-rc.1"}, {"0", "0.0.0"}} {
		if c, err := CompareVersions(same[0], same[1]); c != 0 || err != nil {
			t.Errorf("Compare(%s, %s) = %d, %v; want the same version", same[0], same[1], c, err)
		}
	}
	for _, bad := range []string{"", "v1.2", "1..2", "1.2.", ".1", "1.x", "latest", "1.0-", "1.0-rc..1", "1.0-rc_1",
		"1.2.3.4.5.6.7.8.9", strings.Repeat("1", MaxFirmwareVersion+1), "1.0 beta", "1,2"} {
		if _, err := ParseVersion(bad); !errors.Is(err, ErrVersionNotComparable) {
			t.Errorf("ParseVersion(%q) = %v, want ErrVersionNotComparable", bad, err)
		}
	}
}

func TestFirmwareBehind(t *testing.T) {
	for _, c := range []struct {
		version, minimum, detail string
	}{
		{"1.2.0", "1.4.0", "reports 1.2.0, product minimum 1.4.0"},
		{"1.4.0-rc.2", "1.4.0", "reports 1.4.0-rc.2, product minimum 1.4.0"},
		{"1.4.0", "1.4.0", ""},
		{"1.4.0+local", "1.4", ""},
		{"2.0", "1.4.0", ""},
		{"nightly", "1.4.0", "reports nightly, which cannot be compared with product minimum 1.4.0"},
	} {
		detail, outdated := firmwareBehind(c.version, c.minimum)
		if detail != c.detail || outdated != (c.detail != "") {
			t.Errorf("firmwareBehind(%s, %s) = %q, %v; want %q", c.version, c.minimum, detail, outdated, c.detail)
		}
	}
}

func TestCloneReasons(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	id := identity.FromSPKI([]byte("d"))
	report := func(at time.Duration, uptime time.Duration, counter uint32) store.DeviceStatus {
		return store.DeviceStatus{Identity: id, ReceivedAt: t0.Add(at), Uptime: uptime, SecurityCounter: counter}
	}
	for _, c := range []struct {
		name      string
		prev, cur store.DeviceStatus
		want      []string
	}{
		{"steady", report(0, time.Hour, 3), report(time.Hour, 2*time.Hour, 3), nil},
		{"reboot", report(0, time.Hour, 3), report(time.Hour, time.Minute, 3), nil},
		{"update raises the counter", report(0, time.Hour, 3), report(time.Hour, time.Minute, 4), nil},
		{"network delay within the tolerance", report(0, time.Hour, 3), report(time.Hour, 2*time.Hour+90*time.Second, 3), nil},
		{"boot went back", report(0, time.Minute, 3), report(time.Hour, 10*time.Hour, 3), []string{"boot time went back 8h59m0s"}},
		{"counter went down", report(0, time.Hour, 4), report(time.Hour, 2*time.Hour, 3), []string{"security counter went down from 4 to 3"}},
		{"both", report(0, time.Minute, 4), report(time.Hour, 10*time.Hour, 3), []string{"boot time went back", "security counter went down"}},
	} {
		got := cloneReasons(c.prev, c.cur, DefaultBootTolerance)
		if len(got) != len(c.want) {
			t.Errorf("%s: %q, want %d reasons", c.name, got, len(c.want))
			continue
		}
		for i, w := range c.want {
			if !strings.HasPrefix(got[i], w) {
				t.Errorf("%s: reason %q, want it to start %q", c.name, got[i], w)
			}
		}
	}
}

func TestCloneConfigRefused(t *testing.T) {
	for name, c := range map[string]CloneConfig{
		"negative tolerance": {BootTolerance: -time.Second},
		"negative window":    {FailedProofWindow: -time.Minute},
		"too many proofs":    {FailedProofs: 1001},
		"negative queue":     {QueueSize: -1},
	} {
		if _, err := New(Config{Store: &fakeStore{}, Devices: &fakeAuth{}, Clone: c}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzParseVersion: whatever a device reports, parsing never panics, and
// the order of what parses is a total order: antisymmetric, reflexive, and
// the same version read twice compares equal.
func FuzzParseVersion(f *testing.F) {
	for _, seed := range [][2]string{{"1.4.2", "1.4.10"}, {"2.0.0-rc.1+build.7", "2.0.0"}, {"1.0.0-alpha.beta", "1.0.0-alpha.1"},
		{"01.2", "1.2.0.0"}, {"1.x", "1"}, {"", "-"}, {"1.0-", "1+"}, {"99999999999999999999999", "1e9"}} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		va, errA := ParseVersion(a)
		vb, errB := ParseVersion(b)
		if errA != nil && !errors.Is(errA, ErrVersionNotComparable) {
			t.Fatalf("ParseVersion(%q): %v", a, errA)
		}
		if errA != nil || errB != nil {
			return
		}
		if va.Compare(va) != 0 {
			t.Fatalf("%q does not equal itself", a)
		}
		if va.Compare(vb) != -vb.Compare(va) {
			t.Fatalf("Compare(%q, %q) = %d but Compare(%q, %q) = %d", a, b, va.Compare(vb), b, a, vb.Compare(va))
		}
	})
}
