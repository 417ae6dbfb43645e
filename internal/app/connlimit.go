package app

import (
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// connLimiter is a listener that admits at most perAddress open
// connections from one source and at most total in all. A connection over
// either bound is reset as soon as it is accepted, before any TLS, so that
// refusing it costs next to nothing; a bound of zero or less is none.
type connLimiter struct {
	net.Listener
	perAddress, total int
	refused           *prometheus.CounterVec

	mu     sync.Mutex
	open   int
	byAddr map[netip.Addr]int
}

// newConnLimiter wraps ln and registers its metrics: the connections open
// and those refused, by the bound that refused them.
func newConnLimiter(ln net.Listener, perAddress, total int, reg prometheus.Registerer) (*connLimiter, error) {
	l := &connLimiter{Listener: ln, perAddress: perAddress, total: total, byAddr: map[netip.Addr]int{},
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hallmark_connections_refused_total",
			Help: "Connections closed on accept for exceeding a bound: per_address (--max-conns-per-address) or total (--max-conns).",
		}, []string{"bound"}),
	}
	open := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hallmark_connections_open",
		Help: "Client connections open now.",
	}, func() float64 {
		l.mu.Lock()
		defer l.mu.Unlock()
		return float64(l.open)
	})
	for _, c := range []prometheus.Collector{l.refused, open} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("connection metrics: %w", err)
		}
	}
	return l, nil
}

// Accept returns the next connection within the bounds, closing those
// over them.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		source := sourceOf(c.RemoteAddr())
		if bound := l.admit(source); bound != "" {
			l.refused.WithLabelValues(bound).Inc()
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0) // a reset: no TIME_WAIT kept for a refusal
			}
			c.Close()
			continue
		}
		return &limitedConn{Conn: c, release: func() { l.release(source) }}, nil
	}
}

// admit counts a connection from source in, or names the bound it
// exceeds.
func (l *connLimiter) admit(source netip.Addr) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.total > 0 && l.open >= l.total:
		return "total"
	case l.perAddress > 0 && l.byAddr[source] >= l.perAddress:
		return "per_address"
	}
	l.open++
	l.byAddr[source]++
	return ""
}

func (l *connLimiter) release(source netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.byAddr[source]--; l.byAddr[source] <= 0 {
		delete(l.byAddr, source)
	}
}

// sourceOf is the unit a per-address bound counts: an IPv4 address, or
// the /64 of an IPv6 address, since one subscriber commonly holds a whole
// /64. A non-IP address counts as one source.
func sourceOf(a net.Addr) netip.Addr {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}
	}
	ip := tcp.AddrPort().Addr().Unmap()
	if ip.Is6() {
		return netip.PrefixFrom(ip, 64).Masked().Addr()
	}
	return ip
}

// limitedConn gives its place back once, at its first Close.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}
