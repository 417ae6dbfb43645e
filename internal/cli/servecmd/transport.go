package servecmd

import (
	"github.com/spf13/pflag"

	"github.com/hallmark-iot/hallmark/internal/app"
	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/store/sqlite"
)

// transportFlags are serve's bounds on what one client can hold of the
// server, and SQLite's durability.
type transportFlags struct {
	limits     app.TransportLimits
	sqliteSync string
}

// transportHelp is serve's help on these flags.
const transportHelp = `

Slow and greedy clients: a new connection must finish its TLS handshake,
and each request send its headers, within --header-timeout. A request body
must arrive, and a response be taken, at --min-rate-bytes per
--min-rate-window or faster (or whole within one window); a slower transfer
is cut with 408 body-too-slow and its connection closed, which also frees a
manifest import slot. One IPv4 address (or IPv6 /64) may hold
--max-conns-per-address connections and all clients --max-conns; a
connection over either is reset on accept and counted in
hallmark_connections_refused_total. Behind a proxy that hides client
addresses, set --max-conns-per-address 0.

Durability: with SQLite every commit (each issued certificate) is synced to
disk before the answer leaves (--sqlite-synchronous full). normal is faster
but a power failure or kernel crash can roll back the last commits: a
device could hold a certificate the registry does not know. See
docs/store.md and docs/performance.md.`

func (t *transportFlags) register(f *pflag.FlagSet) {
	f.DurationVar(&t.limits.HeaderTimeout, "header-timeout", app.DefaultHeaderTimeout,
		"bound on a new connection's TLS handshake, then on each request's headers")
	f.DurationVar(&t.limits.IdleTimeout, "idle-timeout", app.DefaultIdleTimeout, "close a keep-alive connection idle this long")
	f.Int64Var(&t.limits.MinRateBytes, "min-rate-bytes", app.DefaultMinRateBytes,
		"slowest transfer: request bodies must bring, and clients take responses at, `BYTES` (or the rest) per --min-rate-window")
	f.DurationVar(&t.limits.MinRateWindow, "min-rate-window", app.DefaultMinRateWindow, "the window of --min-rate-bytes")
	f.IntVar(&t.limits.MaxConnsPerAddress, "max-conns-per-address", app.DefaultMaxConnsPerAddress,
		"open connections from one IPv4 address or IPv6 /64; more are reset at once (0: no bound)")
	f.IntVar(&t.limits.MaxConns, "max-conns", app.DefaultMaxConns, "open connections from all clients (0: no bound)")
	f.StringVar(&t.sqliteSync, "sqlite-synchronous", string(sqlite.SyncFull),
		"SQLite durability: full (every commit synced before the answer) or normal (faster; a power failure can lose the last commits)")
}

// apply checks the flags (the command line's, or the environment's:
// cmdline.ApplyEnv) into cfg.
func (t *transportFlags) apply(cfg *app.Config) error {
	l := t.limits
	for name, d := range map[string]int64{"--header-timeout": int64(l.HeaderTimeout), "--idle-timeout": int64(l.IdleTimeout),
		"--min-rate-window": int64(l.MinRateWindow), "--min-rate-bytes": l.MinRateBytes} {
		if d <= 0 {
			return cmdline.Usagef("%s must be positive", name)
		}
	}
	// In the app's configuration zero selects the default; here it is
	// "no bound".
	for _, n := range []*int{&l.MaxConnsPerAddress, &l.MaxConns} {
		if *n <= 0 {
			*n = -1
		}
	}
	mode, err := sqlite.ParseSynchronous(t.sqliteSync)
	if err != nil {
		return cmdline.Usage(err)
	}
	if cfg.Database != "" && mode != sqlite.SyncFull {
		return cmdline.Usagef("--sqlite-synchronous %s: the registry is PostgreSQL, whose durability is its server's synchronous_commit", mode)
	}
	cfg.Transport, cfg.SQLiteSynchronous = l, mode
	return nil
}
