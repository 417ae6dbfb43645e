package admincmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
)

func newAdminEventsCmd(s *cmdline.Streams, f *adminFlags) *cobra.Command {
	var q httpapi.EventQuery
	var asJSON, follow bool
	var every time.Duration
	cmd := &cobra.Command{
		Use:   "events [--kind K] [--identity ID] [--after SEQ] [--limit N] [--follow [--every D]] [--json]",
		Short: "Read the device event log (lifecycle, expiring certificates, silent devices), oldest first",
		Long: `Reads the device event log in commit order. With --follow it keeps
polling for new events after the last one printed, one line each (one JSON
object per line with --json), until interrupted (Ctrl-C).`,
		Args: cobra.NoArgs,
		RunE: adminRun(s, f, func(ctx context.Context, c *httpapi.Client, _ []string) error {
			if every <= 0 {
				return cmdline.Usagef("--every must be positive")
			}
			list := func(after int64) (httpapi.EventList, error) {
				page := q
				page.After = after
				return c.ListEvents(ctx, page)
			}
			if !follow {
				page, err := list(q.After)
				if err != nil {
					return err
				}
				if page.Next != 0 {
					fmt.Fprintf(s.Err, "more events: --after %d (or --follow)\n", page.Next)
				}
				if asJSON {
					return s.PrintJSON(page)
				}
				var rows [][]string
				for _, e := range page.Events {
					rows = append(rows, eventRow(e))
				}
				return s.Table("SEQ\tTIME\tKIND\tIDENTITY\tSERIAL\tDETAIL", rows)
			}
			emit := func(e httpapi.Event) error {
				if asJSON {
					line, err := json.Marshal(e)
					if err != nil {
						return err
					}
					_, err = fmt.Fprintf(s.Out, "%s\n", line)
					return err
				}
				_, err := fmt.Fprintln(s.Out, joinTab(eventRow(e)))
				return err
			}
			wait := func(ctx context.Context) error {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(every):
					return nil
				}
			}
			err := followEvents(ctx, q.After, list, emit, wait)
			if errors.Is(err, context.Canceled) {
				return nil // interrupted: the way --follow ends
			}
			return err
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&q.Kind, "kind", "", "only events of `KIND` (e.g. device.revoked, certificate.expiring)")
	fl.StringVar(&q.Identity, "identity", "", "only events of the device `IDENTITY`")
	fl.Int64Var(&q.After, "after", 0, "start after sequence number `SEQ`")
	fl.IntVar(&q.Limit, "limit", 0, "page size, 1 to 1000 (default 100)")
	fl.BoolVar(&follow, "follow", false, "keep polling for new events until interrupted")
	fl.DurationVar(&every, "every", 2*time.Second, "with --follow, poll every `DURATION`")
	fl.BoolVar(&asJSON, "json", false, "print JSON (one object per line with --follow)")
	return cmd
}

// followEvents prints every event after after, then waits and polls for
// more, until list, emit or wait fails (wait fails when ctx ends). A full
// page is followed at once by the next.
func followEvents(ctx context.Context, after int64, list func(after int64) (httpapi.EventList, error),
	emit func(httpapi.Event) error, wait func(context.Context) error) error {
	for {
		page, err := list(after)
		if err != nil {
			return err
		}
		for _, e := range page.Events {
			if err := emit(e); err != nil {
				return err
			}
			after = e.Seq
		}
		if page.Next != 0 {
			continue
		}
		if err := wait(ctx); err != nil {
			return err
		}
	}
}

func eventRow(e httpapi.Event) []string {
	serial := e.Serial
	if serial == "" {
		serial = "-"
	}
	return []string{fmt.Sprint(e.Seq), formatTime(e.Time), e.Kind, e.Identity, serial, e.Detail}
}

func joinTab(fields []string) string { return strings.Join(fields, "\t") }
