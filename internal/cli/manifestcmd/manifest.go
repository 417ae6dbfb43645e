// Package manifestcmd owns "hallmark manifest": verifying a station's
// signed batch manifest offline and inspecting one without keys.
package manifestcmd

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/manifest"
)

// New returns the manifest command group.
func New(s *cmdline.Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "manifest",
		Short: "Verify and inspect signed batch manifests",
		Long: `A batch manifest lists the devices a provisioning station enrolled, each with its
proof of possession, and ends in the station's signature over the whole file
(see docs/manifest.md). Manifests are read as a stream, so their size does not
matter; --in - (the default) reads standard input.`,
	}
	cmd.AddCommand(newManifestVerifyCmd(s), newManifestInspectCmd(s))
	return cmd
}

// openManifest opens the manifest to stream from, or standard input.
func openManifest(s *cmdline.Streams, path string) (io.Reader, func(), error) {
	if path == "" || path == cmdline.Stdio {
		return s.In, func() {}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read manifest: %w", cmdline.PathError(err))
	}
	return f, func() { f.Close() }, nil
}

func newManifestVerifyCmd(s *cmdline.Streams) *cobra.Command {
	var stationPath, in string
	cmd := &cobra.Command{
		Use:   "verify --station STATION.pub [--in FILE]",
		Short: "Verify a manifest against the station's public key; exit 1 if anything fails",
		Long: `Verify every line of a manifest: the header names the given station key, each
device's identity is the SHA-256 of its public key and its proof of possession
verifies, no identity repeats, and the trailer's count, digest and station
signature match. On success print a summary; on any failure print one error
line and exit 1. A manifest that fails must not be imported at all.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if stationPath == "" {
				return cmdline.Usagef("--station FILE (the station public key PEM) is required")
			}
			if stationPath == cmdline.Stdio && (in == "" || in == cmdline.Stdio) {
				return cmdline.Usagef("--station and --in cannot both be standard input")
			}
			key, err := s.ReadKey(stationPath)
			if err != nil {
				return err
			}
			r, done, err := openManifest(s, in)
			if err != nil {
				return err
			}
			defer done()
			sum, err := manifest.Verify(cmd.Context(), r, cmdline.PublicOf(key), nil)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "manifest verified: station signature and %d device proofs valid\n", sum.Count)
			return printManifestSummary(s.Out, sum)
		},
	}
	cmd.Flags().StringVar(&stationPath, "station", "", "station public key PEM `FILE`")
	cmd.Flags().StringVarP(&in, "in", "i", "-", "manifest `FILE`")
	return cmd
}

func printManifestSummary(out io.Writer, sum manifest.Summary) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	h := sum.Header
	fmt.Fprintf(tw, "batch:\t%s\n", h.Batch)
	fmt.Fprintf(tw, "station:\t%s (%s)\n", h.Station, h.StationAlgorithm)
	fmt.Fprintf(tw, "created:\t%s\n", h.Created.Format("2006-01-02T15:04:05Z"))
	fmt.Fprintf(tw, "digest:\t%s\n", hex.EncodeToString(sum.Digest[:]))
	fmt.Fprintf(tw, "devices:\t%d\n", sum.Count)
	fmt.Fprintf(tw, "root of trust:\tpuf %d, keygen %d, inject %d (encrypted %d, clear %d)\n",
		sum.ByRootOfTrust[manifest.PUF], sum.ByRootOfTrust[manifest.Keygen], sum.ByRootOfTrust[manifest.Inject],
		sum.ByInjection[manifest.Encrypted], sum.ByInjection[manifest.Clear])
	algs := make([]string, 0, len(sum.ByAlgorithm))
	for alg, n := range sum.ByAlgorithm {
		algs = append(algs, fmt.Sprintf("%s %d", alg, n))
	}
	slices.Sort(algs)
	fmt.Fprintf(tw, "algorithms:\t%s\n", strings.Join(algs, ", "))
	fmt.Fprintf(tw, "locks:\t%s\n", locksSummary(sum))
	return tw.Flush()
}

// locksSummary counts the devices the station recorded fully locked
// against the rest. A partly locked record, or one written before stations
// recorded locks, counts as left open: that is how a product that requires
// locked devices treats it (docs/manufacturing.md, "Locking the device").
func locksSummary(sum manifest.Summary) string {
	return fmt.Sprintf("%d locked, %d left open", sum.Count-sum.NotClosed, sum.NotClosed)
}

// lockLabel names a record's lock state in the record table: "locked" when
// every lock is closed, otherwise the locks closed, "open", or "unknown"
// for a record written before stations recorded locks.
func lockLabel(l manifest.Locks) string {
	if l.Closed() {
		return "locked"
	}
	return l.Label()
}

func newManifestInspectCmd(s *cmdline.Streams) *cobra.Command {
	var in string
	var asJSON bool
	var limit int
	cmd := &cobra.Command{
		Use:   "inspect [--in FILE] [--records N] [--json]",
		Short: "Show a manifest's header, counts and first records WITHOUT verifying it",
		Long: `Show a manifest's header, counts and first records. Inspect checks the format,
the digest and that no identity repeats, but NOT the station signature nor any
device proof: what it shows is unauthenticated. Use "hallmark manifest verify"
before trusting a manifest.

The summary's locks line counts the devices the station recorded with every
lock closed against those left open (open, partly locked, or recorded before
stations locked chips); the LOCKS column shows each record's state.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return cmdline.Usagef("--records must be 0 or more")
			}
			r, done, err := openManifest(s, in)
			if err != nil {
				return err
			}
			defer done()
			var first []manifest.Record
			sum, err := manifest.Inspect(cmd.Context(), r, func(rec manifest.Record) error {
				if len(first) < limit {
					first = append(first, rec)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if asJSON {
				return printInspectJSON(s.Out, sum, first)
			}
			return printInspectText(s.Out, sum, first)
		},
	}
	cmd.Flags().StringVarP(&in, "in", "i", "-", "manifest `FILE`")
	cmd.Flags().IntVarP(&limit, "records", "n", 10, "show the first `N` records")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON: header, counts and records as manifest lines")
	return cmd
}

const notVerified = "NOT VERIFIED: station signature and device proofs were not checked (use hallmark manifest verify)"

func printInspectText(out io.Writer, sum manifest.Summary, first []manifest.Record) error {
	fmt.Fprintln(out, notVerified)
	if err := printManifestSummary(out, sum); err != nil {
		return err
	}
	if len(first) == 0 {
		return nil
	}
	fmt.Fprintf(out, "first %d records:\n", len(first))
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tIDENTITY\tALGORITHM\tROOT OF TRUST\tINJECTION\tLOCKS\tTIME")
	for _, r := range first {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Seq, r.Identity, r.Algorithm, r.RootOfTrust, r.Injection,
			lockLabel(r.Locks), r.Time.Format("2006-01-02T15:04:05Z"))
	}
	return tw.Flush()
}

// inspectJSON is the --json output; header and records are the manifest's
// own lines, so the JSON a script reads is the format it will import.
type inspectJSON struct {
	Verified      bool                         `json:"verified"`
	Note          string                       `json:"note"`
	Header        manifest.Header              `json:"header"`
	Count         int                          `json:"count"`
	Digest        string                       `json:"digest"`
	ByRootOfTrust map[manifest.RootOfTrust]int `json:"by_root_of_trust"`
	ByInjection   map[manifest.Injection]int   `json:"by_injection"`
	ByAlgorithm   map[string]int               `json:"by_algorithm"`
	// Locked and LeftOpen split Count as the text summary does; each
	// record's own "locks" field is the manifest line's.
	Locked   int               `json:"locked"`
	LeftOpen int               `json:"left_open"`
	Records  []manifest.Record `json:"records"`
}

func printInspectJSON(out io.Writer, sum manifest.Summary, first []manifest.Record) error {
	doc := inspectJSON{
		Verified: false, Note: notVerified, Header: sum.Header, Count: sum.Count,
		Digest:        hex.EncodeToString(sum.Digest[:]),
		ByRootOfTrust: sum.ByRootOfTrust, ByInjection: sum.ByInjection, ByAlgorithm: map[string]int{},
		Locked: sum.Count - sum.NotClosed, LeftOpen: sum.NotClosed,
		Records: append([]manifest.Record{}, first...),
	}
	for alg, n := range sum.ByAlgorithm {
		doc.ByAlgorithm[string(alg)] = n
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}
