package fleet

import (
	"context"
	"crypto/x509"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingProxy forwards TCP connections to target and counts those it
// accepted: the connections the platform saw, counted on its side of the
// load generator.
type countingProxy struct {
	ln       net.Listener
	accepted atomic.Int64
	wg       sync.WaitGroup
}

func newCountingProxy(t *testing.T, target string) *countingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{ln: ln}
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			p.wg.Go(func() {
				defer c.Close()
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{})
				go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite(); close(done) }()
				io.Copy(c, up)
				c.(*net.TCPConn).CloseWrite()
				<-done
			})
		}
	})
	return p
}

// onboardThrough onboards count devices from first with mode's clients
// of the platform at server, through proxy, and checks that the server's
// CPU was read around the run and that the onboardings it counted are the
// load generator's. It returns the report and the connections the proxy
// accepted meanwhile.
func onboardThrough(t *testing.T, proxy *countingProxy, meter *CPUMeter, server string, pool *x509.CertPool, cfg OnboardConfig, mode Connections) (*Report, int64) {
	t.Helper()
	ctx := context.Background()
	clients, err := NewClients(server, pool, mode, cfg.Concurrency, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer clients.Close()
	if err := clients.Configure(&cfg); err != nil {
		t.Fatal(err)
	}
	before := proxy.accepted.Load()
	s0, err := meter.Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Onboard(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s1, err := meter.Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rep.CPU = meter.Usage(s0, s1)
	if rep.Onboarded != int64(cfg.Count) || rep.Failed != 0 || rep.Connections != mode {
		t.Fatalf("%s: report %+v", mode, rep)
	}
	if c := rep.CPU; c.Server <= 0 || c.ServerOnboarded != rep.Onboarded || c.LoadGenerator <= 0 || c.Extra <= 0 ||
		rep.ServerCPUPerOnboarding() != (c.Server+c.Extra)/time.Duration(rep.Onboarded) {
		t.Fatalf("%s: CPU %+v for %d onboardings", mode, c, rep.Onboarded)
	}
	return rep, proxy.accepted.Load() - before
}
