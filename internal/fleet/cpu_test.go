package fleet

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestServerCPUMetrics(t *testing.T) {
	body := `# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
hallmark_onboarding_step_seconds_count{outcome="ok",step="challenge"} 99
hallmark_onboarding_step_seconds_count{outcome="ok",step="proof"} 40
hallmark_onboarding_step_seconds_count{outcome="proof-rejected",step="proof"} 7
hallmark_onboarding_step_seconds_count{step="proof", outcome="ok",note="a \"quoted\" \\ value, with } and ,"} 2 1700000000000
`
	cpu, n, err := serverCPUMetrics([]byte(body))
	if err != nil || cpu != 12.5 || n != 42 {
		t.Fatalf("cpu %v, onboarded %v, %v; want 12.5, 42", cpu, n, err)
	}
	if _, n, err := serverCPUMetrics([]byte("process_cpu_seconds_total 1\n")); err != nil || n != 0 {
		t.Fatalf("no onboarding series: %v, %v", n, err)
	}
	for name, bad := range map[string]string{
		"no process metrics": "go_goroutines 7\n",
		"no value":           "process_cpu_seconds_total\n",
		"bad value":          "process_cpu_seconds_total twelve\n",
		"unterminated label": `x{a="b} 1` + "\n",
		"bad escape":         `x{a="\q"} 1` + "\n",
		"no comma":           `x{a="b" c="d"} 1` + "\n",
		"no quote":           `x{a=b} 1` + "\n",
	} {
		if _, _, err := serverCPUMetrics([]byte(bad)); err == nil {
			t.Errorf("%s: %q accepted", name, bad)
		}
	}
}

func FuzzScanMetrics(f *testing.F) {
	f.Add([]byte("process_cpu_seconds_total 12.5\n# comment\n\nx{a=\"b\",c=\"d\\n\"} 1 2\n"))
	f.Add([]byte(`hallmark_onboarding_step_seconds_count{outcome="ok",step="proof"} +Inf`))
	f.Add([]byte("x{a=\"\\"))
	f.Add([]byte("{} 1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		scanMetrics(data, func(name string, labels map[string]string, v float64) {
			if name == "" || strings.ContainsAny(name, "{ \t\n") {
				t.Fatalf("name %q", name)
			}
		})
	})
}

func TestParseProcStat(t *testing.T) {
	// A command name with spaces and parentheses: fields count from the
	// last ')'.
	line := "4242 (post (gres) x) S 17 4242 4242 0 -1 4194560 1234 0 0 0 150 30 12 8 20 0 1 0 100 200000 300 18446744073709551615\n"
	st, err := parseProcStat([]byte(line))
	if err != nil || st.ppid != 17 || st.ticks != 150+30+12+8 {
		t.Fatalf("%+v, %v", st, err)
	}
	for _, bad := range []string{"", "1 (x S 1", "1 (x) S 1 2 3", "1 (x) S -1 1 1 0 -1 0 0 0 0 0 1 1 1 1 20",
		"1 (x) S 1 1 1 0 -1 0 0 0 0 0 1 1 -1 1 20"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseProcStat(f *testing.F) {
	f.Add([]byte("4242 (postgres) S 17 4242 4242 0 -1 4194560 1234 0 0 0 150 30 12 8 20 0 1 0 100 200000 300\n"))
	f.Add([]byte("1 (a) b) R 0 1 1 0 -1 0 0 0 0 0 9223372036854775807 9223372036854775807 1 1 20"))
	f.Add([]byte(")"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if st, err := parseProcStat(data); err == nil && st.ppid < 0 {
			t.Fatalf("negative parent %d", st.ppid)
		}
	})
}

// TestProcessTreeCPU reads a process tree: a parent, its child and
// grandchild count, a stranger does not.
func TestProcessTreeCPU(t *testing.T) {
	proc := t.TempDir()
	write := func(pid, ppid int, ticks int) {
		dir := filepath.Join(proc, strconv.Itoa(pid))
		os.MkdirAll(dir, 0o755)
		line := strconv.Itoa(pid) + " (p " + strconv.Itoa(pid) + ") S " + strconv.Itoa(ppid) +
			" 1 1 0 -1 0 0 0 0 0 " + strconv.Itoa(ticks) + " 0 0 0 20 0 1 0\n"
		os.WriteFile(filepath.Join(dir, "stat"), []byte(line), 0o644)
	}
	write(10, 1, 100)
	write(11, 10, 50)
	write(12, 11, 25)
	write(13, 1, 1000)
	os.WriteFile(filepath.Join(proc, "uptime"), []byte("1 1\n"), 0o644)
	if got, err := processTreeCPU(proc, 10); err != nil || got != 1750*time.Millisecond {
		t.Fatalf("tree of 10: %v, %v; want 1.75 s", got, err)
	}
	if _, err := processTreeCPU(proc, 99); err == nil {
		t.Fatal("a missing process was read")
	}
	// This process, in the real /proc: its own CPU time so far.
	if got, err := processTreeCPU("/proc", os.Getpid()); err != nil || got <= 0 {
		t.Fatalf("this process: %v, %v", got, err)
	}
}
