package mosquitto_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/connector/mosquitto"
	"github.com/hallmark-iot/hallmark/internal/connector/mosquitto/broker"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
	"github.com/hallmark-iot/hallmark/internal/store/sqlite"
)

// BenchmarkPatternJobPath measures pattern-mode registrations through the
// whole job path, as `hallmark serve` runs it: b.N devices onboarded in a
// real SQLite registry (in memory) with one register job each, then four
// workers claim the jobs, read each device, its product and certificate,
// call Register (which parses the certificate and checks its name) and
// complete the job. The broker is not involved: that is the point.
//
//	go test -run XXX -bench PatternJobPath -benchtime 100000x ./internal/connector/mosquitto/
func BenchmarkPatternJobPath(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	s, err := sqlite.Open(ctx, sqlite.Memory)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	stationKey := sha256.Sum256([]byte("station"))
	station := store.Station{ID: identity.FromSPKI(stationKey[:]), Name: "s", Algorithm: sigalg.Ed25519, PublicKey: stationKey[:], CreatedAt: now}
	product := store.Product{ID: "sensor", Name: "Sensor", CertValidity: time.Hour, CloudEndpoint: "mqtts://broker.test:8883", CreatedAt: now}
	if err := s.CreateStation(ctx, station); err != nil {
		b.Fatal(err)
	}
	if err := s.CreateProduct(ctx, product); err != nil {
		b.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	devices := make([]store.Device, b.N)
	for i := range devices {
		spki := sha256.Sum256(fmt.Appendf(nil, "device %d", i))
		devices[i] = store.Device{Identity: identity.FromSPKI(spki[:]), Algorithm: sigalg.ECDSAP256, PublicKey: spki[:], RootOfTrust: "keygen", Injection: "none"}
	}
	if _, err := s.ImportBatch(ctx, store.Batch{ID: "b1", StationID: station.ID, ProductID: product.ID, ImportedAt: now}, devices); err != nil {
		b.Fatal(err)
	}
	// Real certificates naming each identity; one key signs for all, which
	// changes nothing for Register.
	for _, d := range devices {
		iss, err := e.ca.IssueDevice(ctx, pki.DeviceRequest{Identity: d.Identity, PublicKey: &key.PublicKey, Validity: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		cert := store.Certificate{Identity: d.Identity, Serial: iss.Serial, NotBefore: iss.NotBefore, NotAfter: iss.NotAfter, DER: iss.DER}
		if err := s.RecordOnboarding(ctx, cert, now, store.Job{Kind: store.JobRegister, Connector: "mosquitto"}); err != nil {
			b.Fatal(err)
		}
	}
	conn, err := mosquitto.New(mosquitto.Config{Mode: mosquitto.ModePattern})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var wg sync.WaitGroup
	for n := range 4 {
		w, err := connector.NewWorker(s, map[string]connector.Connector{"mosquitto": conn}, connector.WorkerConfig{ID: fmt.Sprint("w", n), Batch: 16})
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			for {
				ran, err := w.RunOnce(ctx)
				if err != nil {
					b.Error(err)
					return
				}
				if ran == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "registrations/s")
}

// BenchmarkDynsecRegisterAt measures dynamic-security registrations and
// deregistrations (one connector, one device at a time) against a broker
// that already holds `fill` devices: the devices are written into the
// plugin's file while the broker is stopped, in the shape Register gives
// them, so that the rate at 10,000 devices is measured without
// registering 10,000 first. b.N devices are registered, then deregistered;
// besides both rates it reports the broker's CPU time per change (from
// /proc) and the size of the file the plugin rewrites after each one.
// HALLMARK_BENCH_DYNSEC_100K=1 adds a broker of 100,000 devices (minutes:
// about four seconds a change).
//
//	go test -run XXX -bench DynsecRegisterAt -benchtime 50x ./internal/connector/mosquitto/
//	HALLMARK_BENCH_DYNSEC_100K=1 go test -run XXX -bench 'DynsecRegisterAt/100000' -benchtime 20x -timeout 30m ./internal/connector/mosquitto/
func BenchmarkDynsecRegisterAt(b *testing.B) {
	fills := []int{100, 2000, 10000}
	if os.Getenv("HALLMARK_BENCH_DYNSEC_100K") == "1" {
		fills = append(fills, 100_000)
	}
	for _, fill := range fills {
		b.Run(fmt.Sprint(fill), func(b *testing.B) {
			e := newEnv(b)
			e.broker.Stop()
			prefill(b, e.broker.DynsecFile(), fill)
			if fill <= 10000 {
				e.broker.Restart()
			} else {
				startLoaded(b, e.broker.DynsecFile(), e.broker.AdminURL())
			}
			ctx := context.Background()
			ids := make([]identity.ID, b.N)
			for i := range ids {
				ids[i] = identity.FromSPKI(fmt.Appendf(nil, "bench device %d", i))
			}
			cpu0 := brokerCPU(b, e.broker.PIDFile())
			b.ResetTimer()
			start := time.Now()
			for _, id := range ids {
				if err := e.conn.Register(ctx, connector.Device{Identity: id}); err != nil {
					b.Fatal(err)
				}
			}
			registered, cpu1 := time.Since(start), brokerCPU(b, e.broker.PIDFile())
			for _, id := range ids {
				if err := e.conn.Deregister(ctx, id); err != nil {
					b.Fatal(err)
				}
			}
			deregistered, cpu2 := time.Since(start)-registered, brokerCPU(b, e.broker.PIDFile())
			b.StopTimer()
			info, err := os.Stat(e.broker.DynsecFile())
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/registered.Seconds(), "registrations/s")
			b.ReportMetric(float64(b.N)/deregistered.Seconds(), "deregistrations/s")
			b.ReportMetric((cpu1-cpu0).Seconds()*1000/float64(b.N), "broker-cpu-ms/register")
			b.ReportMetric((cpu2-cpu1).Seconds()*1000/float64(b.N), "broker-cpu-ms/deregister")
			b.ReportMetric(float64(info.Size())/1e6, "dynsec-file-MB")
		})
	}
}

// startLoaded starts the broker on its configuration again itself, for a
// dynamic-security file so large that loading it takes longer than the
// broker package waits for a start, and stops it when the benchmark ends.
func startLoaded(b *testing.B, dynsecFile, adminURL string) {
	b.Helper()
	u, err := url.Parse(adminURL)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(broker.Binary, "-c", filepath.Join(filepath.Dir(dynsecFile), "mosquitto.conf"))
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	start := time.Now()
	for {
		c, err := net.DialTimeout("tcp", u.Host, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Since(start) > 10*time.Minute {
			b.Fatalf("the broker does not listen after 10 minutes: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Logf("the broker loaded its dynamic-security file in %v", time.Since(start).Round(time.Second))
}

// brokerCPU is the CPU time (user and system) the broker whose PID file
// is pidFile has used so far, from /proc/<pid>/stat.
func brokerCPU(b *testing.B, pidFile string) time.Duration {
	b.Helper()
	pid, err := os.ReadFile(pidFile)
	if err != nil {
		b.Fatal(err)
	}
	stat, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is field 3, utime and stime fields 14 and 15.
	rest := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(rest) < 13 {
		b.Fatalf("/proc stat of the broker: %q", stat)
	}
	var ticks int64
	for _, f := range rest[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc's CPU times: 100 on Linux.
const clockTicks = 100

// prefill adds n devices, each a client and a role as Register makes
// them, to a dynamic-security file.
func prefill(b *testing.B, path string, n int) {
	b.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	var state map[string]any
	if err := json.Unmarshal(data, &state); err != nil {
		b.Fatal(err)
	}
	clients, _ := state["clients"].([]any)
	roles, _ := state["roles"].([]any)
	for i := range n {
		id := identity.FromSPKI(fmt.Appendf(nil, "prefilled device %d", i)).String()
		role := mosquitto.RolePrefix + id
		var acls []any
		for _, t := range []string{"publishClientSend", "publishClientReceive", "subscribePattern", "unsubscribePattern"} {
			acls = append(acls, map[string]any{"acltype": t, "topic": "devices/" + id + "/#", "allow": true, "priority": 0})
		}
		roles = append(roles, map[string]any{"rolename": role, "acls": acls})
		clients = append(clients, map[string]any{"username": id, "roles": []any{map[string]any{"rolename": role}}})
	}
	state["clients"], state["roles"] = clients, roles
	if data, err = json.Marshal(state); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		b.Fatal(err)
	}
}
