// Package auditcmd owns `hallmark audit`: checking the tamper-evident
// audit chain offline (verify), exporting it (export), archiving and
// pruning old entries (prune) and fetching the audit public key (key).
// verify, export and prune read the database directly, as an auditor with
// a copy of it or read access would; docs/evidence.md describes the chain
// and the export format.
package auditcmd

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/atomicfile"
	"github.com/hallmark-iot/hallmark/internal/audit/chain"
	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
	"github.com/hallmark-iot/hallmark/internal/store/postgres"
	"github.com/hallmark-iot/hallmark/internal/store/sqlite"
)

// maxKeyFile bounds the audit public key file read.
const maxKeyFile = 64 << 10

// New returns the audit command group.
func New(s *cmdline.Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Verify, export and prune the tamper-evident audit log",
		Long: `The platform links every audit event into a hash chain and signs the chain's head
with its audit key (GET /v1/audit/key; hallmark audit key). These commands check
that chain offline, from the database (--db: a SQLite file such as
DATA_DIR/hallmark.db, or a postgres:// URL) or from an export (--export), and
name the first entry that was changed, removed, inserted or reordered.`,
	}
	cmd.AddCommand(newVerifyCmd(s), newExportCmd(s), newPruneCmd(s), newKeyCmd(s))
	return cmd
}

// openChain opens the store named by --db: a postgres:// URL or the path
// of an existing SQLite file (never a new one: a typo must not verify an
// empty log).
func openChain(ctx context.Context, db string) (store.AuditChain, func(), error) {
	if db == "" {
		return nil, nil, cmdline.Usagef("--db is required: a SQLite file or a postgres:// URL")
	}
	var s interface {
		store.AuditChain
		Close() error
	}
	if strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://") {
		pg, err := postgres.Open(ctx, db)
		if err != nil {
			return nil, nil, err
		}
		s = pg
	} else {
		if !cmdline.FileExists(db) {
			return nil, nil, cmdline.Usagef("--db %s: no such SQLite file", cmdline.DisplayPath(db))
		}
		lite, err := sqlite.Open(ctx, db)
		if err != nil {
			return nil, nil, err
		}
		s = lite
	}
	return s, func() { s.Close() }, nil
}

func readKey(s *cmdline.Streams, path string) (crypto.PublicKey, error) {
	if path == "" {
		return nil, cmdline.Usagef("--key FILE is required: the audit public key (hallmark audit key)")
	}
	data, err := s.ReadInput(path, maxKeyFile, "audit key")
	if err != nil {
		return nil, err
	}
	pub, err := sigalg.ParsePublicKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("audit key %s: %w", cmdline.DisplayPath(path), err)
	}
	return pub, nil
}

func newVerifyCmd(s *cmdline.Streams) *cobra.Command {
	var db, export, keyFile, witness string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify --key FILE (--db DB | --export FILE) [--witness FILE]",
		Short: "Check a whole audit log against its chain and signed checkpoints",
		Long: `Check every entry against the hash chain and every checkpoint against the audit
key. Exit 0 with a summary, or 1 with one line naming the first entry that was
changed, removed, inserted or reordered, or the log truncated under a signed
checkpoint, or a checkpoint whose signature fails. Entries after the last
checkpoint are chained but not yet signed: the summary counts them.

--witness names an earlier export kept outside the platform: its
checkpoints bind the log too, so deleting the newest checkpoints together
with the entries they sign no longer passes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (db == "") == (export == "") {
				return cmdline.Usagef("give one of --db and --export")
			}
			pub, err := readKey(s, keyFile)
			if err != nil {
				return err
			}
			witnesses, err := readWitness(witness)
			if err != nil {
				return err
			}
			var rep chain.Report
			if export != "" {
				rep, err = verifyFile(s, export, pub, witnesses...)
			} else {
				c, closeDB, oerr := openChain(cmd.Context(), db)
				if oerr != nil {
					return oerr
				}
				defer closeDB()
				rep, err = chain.VerifyStore(cmd.Context(), c, pub, witnesses...)
			}
			if err != nil {
				return err
			}
			return printReport(s, rep, asJSON)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&db, "db", "", "the database: a SQLite `FILE` or a postgres:// URL")
	fl.StringVar(&export, "export", "", "an export or archive `FILE` (- for standard input)")
	fl.StringVar(&keyFile, "key", "", "the audit public key, PEM `FILE`")
	fl.StringVar(&witness, "witness", "", "an earlier export `FILE` whose checkpoints the log must agree with")
	fl.BoolVar(&asJSON, "json", false, "print the summary as JSON")
	cmdline.BindEnv(fl, cmdline.EnvPrefix, "db")
	return cmd
}

// readWitness reads the checkpoints of an earlier export.
func readWitness(path string) ([]store.AuditCheckpoint, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, cmdline.PathError(err)
	}
	defer f.Close()
	cps, err := chain.ReadCheckpoints(f)
	if err != nil {
		return nil, fmt.Errorf("--witness %s: %w", cmdline.DisplayPath(path), err)
	}
	return cps, nil
}

func verifyFile(s *cmdline.Streams, path string, pub crypto.PublicKey, witnesses ...store.AuditCheckpoint) (chain.Report, error) {
	var r io.Reader = s.In
	if !cmdline.IsStdio(path) {
		f, err := os.Open(path)
		if err != nil {
			return chain.Report{}, cmdline.PathError(err)
		}
		defer f.Close()
		r = f
	}
	return chain.VerifyExport(r, pub, witnesses...)
}

func printReport(s *cmdline.Streams, rep chain.Report, asJSON bool) error {
	if asJSON {
		return s.PrintJSON(struct {
			Entries     int64 `json:"entries"`
			First       int64 `json:"first"`
			Head        int64 `json:"head"`
			Checkpoints int   `json:"checkpoints"`
			LastSigned  int64 `json:"last_signed"`
			Unsigned    int64 `json:"unsigned"`
			Unlinked    int64 `json:"unlinked"`
		}{rep.Entries, rep.First, rep.Head, rep.Checkpoints, rep.LastSigned, rep.Unsigned, rep.Unlinked})
	}
	fmt.Fprintf(s.Out, "audit chain OK: %d entries (positions %d to %d), %d checkpoints, last signed position %d; "+
		"unsealed tail: %d chained but unsigned, %d not yet chained\n",
		rep.Entries, rep.First, rep.Head, rep.Checkpoints, rep.LastSigned, rep.Unsigned, rep.Unlinked)
	return nil
}

func newExportCmd(s *cmdline.Streams) *cobra.Command {
	var db, out string
	var force bool
	cmd := &cobra.Command{
		Use:   "export --db DB [--out FILE]",
		Short: "Write the audit log, its chain and checkpoints as JSON lines",
		Long: `Stream every checkpoint, every chained entry with its event, and the events not
yet chained, in the format of docs/evidence.md, to --out or standard output.
hallmark audit verify --export checks it offline.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, closeDB, err := openChain(cmd.Context(), db)
			if err != nil {
				return err
			}
			defer closeDB()
			write := func(w io.Writer) error { return chain.Export(cmd.Context(), c, w, 0) }
			if cmdline.IsStdio(out) {
				return write(s.Out)
			}
			if !force && cmdline.FileExists(out) {
				return cmdline.Usagef("%s exists (--force replaces it)", cmdline.DisplayPath(out))
			}
			return atomicfile.WriteFunc(out, 0o600, write)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&db, "db", "", "the database: a SQLite `FILE` or a postgres:// URL")
	fl.StringVar(&out, "out", "", "output `FILE` (default: standard output)")
	fl.BoolVar(&force, "force", false, "replace an existing --out file")
	cmdline.BindEnv(fl, cmdline.EnvPrefix, "db")
	return cmd
}

func newPruneCmd(s *cmdline.Streams) *cobra.Command {
	var db, archive, keyFile string
	var before int64
	cmd := &cobra.Command{
		Use:   "prune --db DB --before POS --archive FILE --key FILE",
		Short: "Archive old audit entries to a file, then delete them from the database",
		Long: `Prune up to the newest signed checkpoint below position --before: verify the
live log, write those entries and their checkpoints to --archive (which must
not exist) and verify the archive on its own, then delete them from the
database in one transaction. The checkpoint stays as the anchor of what
remains, so both the archive and the live log keep verifying. The archive is
the only copy of the pruned entries: keep it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if before < 2 || archive == "" {
				return cmdline.Usagef("--before POS (at least 2) and --archive FILE are required")
			}
			if cmdline.FileExists(archive) {
				return cmdline.Usagef("%s exists: an archive is never overwritten", cmdline.DisplayPath(archive))
			}
			pub, err := readKey(s, keyFile)
			if err != nil {
				return err
			}
			c, closeDB, err := openChain(cmd.Context(), db)
			if err != nil {
				return err
			}
			defer closeDB()
			return prune(cmd.Context(), s, c, pub, before, archive)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&db, "db", "", "the database: a SQLite `FILE` or a postgres:// URL")
	fl.Int64Var(&before, "before", 0, "prune positions below `POS` (up to the newest checkpoint below it)")
	fl.StringVar(&archive, "archive", "", "archive `FILE` to write; it must not exist")
	fl.StringVar(&keyFile, "key", "", "the audit public key, PEM `FILE`")
	cmdline.BindEnv(fl, cmdline.EnvPrefix, "db")
	return cmd
}

func prune(ctx context.Context, s *cmdline.Streams, c store.AuditChain, pub crypto.PublicKey, before int64, archive string) error {
	if _, err := chain.VerifyStore(ctx, c, pub); err != nil {
		return fmt.Errorf("the live log does not verify; nothing pruned: %w", err)
	}
	head, _, err := c.AuditChainHead(ctx)
	if err != nil {
		return err
	}
	// The newest position is never pruned: it anchors the sealer.
	var through int64
	if err := c.ScanAuditCheckpoints(ctx, func(cp store.AuditCheckpoint) error {
		if cp.Seq < before && cp.Seq < head.Pos {
			through = cp.Seq
		}
		return nil
	}); err != nil {
		return err
	}
	if through == 0 {
		return cmdline.Usagef("no signed checkpoint below position %d and the head: nothing to prune", before)
	}
	err = atomicfile.WriteFunc(archive, 0o600, func(w io.Writer) error { return chain.Export(ctx, c, w, through) })
	if err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	rep, err := verifyFile(s, archive, pub)
	if err != nil {
		return fmt.Errorf("the archive does not verify; nothing pruned: %w", err)
	}
	if rep.Head != through {
		return fmt.Errorf("the archive ends at position %d, not %d; nothing pruned", rep.Head, through)
	}
	n, err := c.PruneAudit(ctx, through)
	if errors.Is(err, store.ErrConflict) {
		return cmdline.Usagef("position %d is the chain's head: wait for newer entries", through)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(s.Out, "pruned %d entries (positions up to %d) into %s; checkpoint %d anchors what remains\n",
		n, through, cmdline.DisplayPath(archive), through)
	return nil
}
