package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CPUUsage is the CPU time an onboarding run cost, read before and after
// it.
type CPUUsage struct {
	// Server is the platform process's CPU time over the run, read from
	// its /metrics (process_cpu_seconds_total, in 10 ms steps).
	Server time.Duration
	// ServerOnboarded is the onboardings the server counted as successful
	// over the run (hallmark_onboarding_step_seconds_count, step "proof",
	// outcome "ok"): the load generator's count, seen from the other
	// side, unless something else onboarded meanwhile.
	ServerOnboarded int64
	// Extra is the CPU time of the processes ExtraPIDs and all their
	// descendants (PostgreSQL's postmaster and its backends), counted with
	// the server's: a PostgreSQL-backed platform's database work is not
	// in its own process.
	Extra     time.Duration
	ExtraPIDs []int
	// LoadGenerator is this process's own CPU time (getrusage), the
	// devices' key derivation included.
	LoadGenerator time.Duration
}

// PerOnboarding is the server's CPU time, with Extra's, per successful
// onboarding.
func (u *CPUUsage) PerOnboarding(onboarded int64) time.Duration {
	if onboarded <= 0 {
		return 0
	}
	return (u.Server + u.Extra) / time.Duration(onboarded)
}

// CPUMeter reads a platform's CPU time and that of the processes beside
// it.
type CPUMeter struct {
	// HTTP reaches Server, the platform's base URL: /metrics is on its API
	// port and needs no token.
	HTTP   *http.Client
	Server string
	// ExtraPIDs are processes on this machine whose CPU time, and their
	// descendants', counts as the server's (read from /proc).
	ExtraPIDs []int
	// Proc is the proc file system's root; /proc if empty.
	Proc string
}

// CPUSample is one reading of a CPUMeter.
type CPUSample struct {
	server    float64 // seconds
	onboarded float64
	extra     time.Duration
	self      time.Duration
}

// maxMetricsBody bounds the /metrics response read: the platform's is
// tens of KiB.
const maxMetricsBody = 8 << 20

// Sample reads the platform's metrics, the extra processes' CPU time and
// this process's.
func (m *CPUMeter) Sample(ctx context.Context) (CPUSample, error) {
	var s CPUSample
	var err error
	if s.self, err = processCPU(); err != nil {
		return s, fmt.Errorf("load generator CPU: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(m.Server, "/")+"/metrics", nil)
	if err != nil {
		return s, fmt.Errorf("server metrics: %w", err)
	}
	resp, err := m.HTTP.Do(req)
	if err != nil {
		return s, fmt.Errorf("server metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("server metrics: GET /metrics: %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetricsBody+1))
	if err != nil {
		return s, fmt.Errorf("server metrics: %w", err)
	}
	if len(body) > maxMetricsBody {
		return s, fmt.Errorf("server metrics: larger than %d bytes", maxMetricsBody)
	}
	if s.server, s.onboarded, err = serverCPUMetrics(body); err != nil {
		return s, fmt.Errorf("server metrics: %w", err)
	}
	proc := m.Proc
	if proc == "" {
		proc = "/proc"
	}
	for _, pid := range m.ExtraPIDs {
		cpu, err := processTreeCPU(proc, pid)
		if err != nil {
			return s, err
		}
		s.extra += cpu
	}
	return s, nil
}

// Usage is what was used between two samples.
func (m *CPUMeter) Usage(before, after CPUSample) *CPUUsage {
	return &CPUUsage{
		Server:          time.Duration(math.Round((after.server - before.server) * float64(time.Second))),
		ServerOnboarded: int64(math.Round(after.onboarded - before.onboarded)),
		Extra:           after.extra - before.extra,
		ExtraPIDs:       m.ExtraPIDs,
		LoadGenerator:   after.self - before.self,
	}
}

// The series serverCPUMetrics reads.
const (
	metricProcessCPU  = "process_cpu_seconds_total"
	metricOnboardings = "hallmark_onboarding_step_seconds_count"
)

// serverCPUMetrics reads the process's CPU seconds and the successful
// onboardings from a Prometheus text exposition. A platform that has not
// onboarded anything yet has no onboarding series: zero.
func serverCPUMetrics(body []byte) (cpuSeconds, onboarded float64, err error) {
	found := false
	err = scanMetrics(body, func(name string, labels map[string]string, value float64) {
		switch {
		case name == metricProcessCPU && len(labels) == 0:
			cpuSeconds, found = value, true
		case name == metricOnboardings && labels["step"] == "proof" && labels["outcome"] == "ok":
			onboarded += value
		}
	})
	if err != nil {
		return 0, 0, err
	}
	if !found {
		return 0, 0, fmt.Errorf("no %s: the server exports no process metrics (not Linux?)", metricProcessCPU)
	}
	return cpuSeconds, onboarded, nil
}

// scanMetrics calls sample for each sample line of a Prometheus text
// exposition (version 0.0.4): a metric name, optional labels in braces,
// a value and an optional timestamp. Comments and blank lines are
// skipped; a malformed line is an error naming its number.
func scanMetrics(body []byte, sample func(name string, labels map[string]string, value float64)) error {
	for n, line := range bytes.Split(body, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		name, labels, value, err := parseSampleLine(string(line))
		if err != nil {
			return fmt.Errorf("line %d: %w", n+1, err)
		}
		sample(name, labels, value)
	}
	return nil
}

var errSampleLine = errors.New("not a metric sample")

func parseSampleLine(line string) (string, map[string]string, float64, error) {
	end := strings.IndexAny(line, "{ \t")
	if end <= 0 {
		return "", nil, 0, errSampleLine
	}
	name, rest := line[:end], line[end:]
	var labels map[string]string
	if rest[0] == '{' {
		var err error
		if labels, rest, err = parseLabels(rest[1:]); err != nil {
			return "", nil, 0, err
		}
	}
	fields := strings.Fields(rest)
	if len(fields) < 1 || len(fields) > 2 {
		return "", nil, 0, fmt.Errorf("%w: want a value and at most a timestamp", errSampleLine)
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return "", nil, 0, fmt.Errorf("%w: value %q", errSampleLine, fields[0])
	}
	return name, labels, v, nil
}

// parseLabels reads name="value" pairs, separated by commas, up to the
// closing brace, and returns what follows it.
func parseLabels(s string) (map[string]string, string, error) {
	labels := map[string]string{}
	for {
		s = strings.TrimLeft(s, " \t")
		if strings.HasPrefix(s, "}") {
			return labels, s[1:], nil
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || eq+1 >= len(s) || s[eq+1] != '"' {
			return nil, "", fmt.Errorf("%w: malformed label", errSampleLine)
		}
		key := strings.TrimSpace(s[:eq])
		var val strings.Builder
		i := eq + 2
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] != '\\' {
				val.WriteByte(s[i])
				continue
			}
			if i++; i == len(s) {
				break
			}
			switch s[i] {
			case 'n':
				val.WriteByte('\n')
			case '\\', '"':
				val.WriteByte(s[i])
			default:
				return nil, "", fmt.Errorf("%w: bad escape in label %q", errSampleLine, key)
			}
		}
		if i >= len(s) {
			return nil, "", fmt.Errorf("%w: unterminated label %q", errSampleLine, key)
		}
		labels[key] = val.String()
		s = strings.TrimLeft(s[i+1:], " \t")
		if strings.HasPrefix(s, ",") {
			s = s[1:]
		} else if !strings.HasPrefix(s, "}") {
			return nil, "", fmt.Errorf("%w: labels not separated by commas", errSampleLine)
		}
	}
}

// userHZ is the unit of /proc/PID/stat's times: USER_HZ, 100 on every
// Linux architecture's ABI whatever the kernel's tick.
const userHZ = 100

// maxProcStat bounds a /proc/PID/stat read (a line of about 300 bytes).
const maxProcStat = 4096

// processTreeCPU is the CPU time of process pid and of all its
// descendants, from proc: each process's own time plus that of its
// children already ended and waited for (cutime, cstime), so that a
// backend that exits between two readings still counts, in its parent.
func processTreeCPU(proc string, pid int) (time.Duration, error) {
	entries, err := os.ReadDir(proc)
	if err != nil {
		return 0, fmt.Errorf("process CPU: %w", err)
	}
	children := map[int][]int{}
	ticks := map[int]uint64{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil || p <= 0 {
			continue
		}
		st, err := readProcStat(filepath.Join(proc, e.Name(), "stat"))
		if err != nil {
			continue // ended meanwhile, or not ours to read
		}
		children[st.ppid] = append(children[st.ppid], p)
		ticks[p] = st.ticks
	}
	if _, ok := ticks[pid]; !ok {
		return 0, fmt.Errorf("process CPU: no process %d in %s", pid, proc)
	}
	var total uint64
	seen := map[int]bool{}
	for queue := []int{pid}; len(queue) > 0; queue = queue[1:] {
		if p := queue[0]; !seen[p] { // a process reused as its own ancestor would loop
			seen[p] = true
			total += ticks[p]
			queue = append(queue, children[p]...)
		}
	}
	return time.Duration(total) * time.Second / userHZ, nil
}

type procStat struct {
	ppid  int
	ticks uint64 // utime + stime + cutime + cstime
}

func readProcStat(path string) (procStat, error) {
	f, err := os.Open(path)
	if err != nil {
		return procStat{}, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxProcStat+1))
	if err != nil {
		return procStat{}, err
	}
	if len(data) > maxProcStat {
		return procStat{}, fmt.Errorf("%s: larger than %d bytes", path, maxProcStat)
	}
	return parseProcStat(data)
}

// parseProcStat reads the parent and the CPU times of a /proc/PID/stat
// line (proc(5)): "pid (comm) state ppid …", where comm may hold spaces
// and parentheses, so the fields are counted from its last ')'.
func parseProcStat(data []byte) (procStat, error) {
	end := bytes.LastIndexByte(data, ')')
	if end < 0 {
		return procStat{}, errors.New("proc stat: no command name")
	}
	// After ")": field 3 (state) is fields[0]; ppid is field 4, utime,
	// stime, cutime and cstime fields 14 to 17.
	fields := strings.Fields(string(data[end+1:]))
	if len(fields) < 15 {
		return procStat{}, fmt.Errorf("proc stat: %d fields after the command name, want at least 15", len(fields))
	}
	ppid, err := strconv.Atoi(fields[1])
	if err != nil || ppid < 0 {
		return procStat{}, fmt.Errorf("proc stat: parent %q", fields[1])
	}
	var st procStat
	st.ppid = ppid
	for _, f := range fields[11:15] {
		// cutime and cstime are signed in the kernel, never negative.
		t, err := strconv.ParseUint(f, 10, 63)
		if err != nil {
			return procStat{}, fmt.Errorf("proc stat: CPU time %q", f)
		}
		if st.ticks+t < st.ticks {
			return procStat{}, errors.New("proc stat: CPU time overflows")
		}
		st.ticks += t
	}
	return st, nil
}
