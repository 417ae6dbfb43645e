package admincmd

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
)

func newAdminAuditCmd(s *cmdline.Streams, f *adminFlags) *cobra.Command {
	var q httpapi.AuditQuery
	var asJSON, all bool
	cmd := &cobra.Command{
		Use:   "audit [--actor A] [--action A] [--subject S] [--after SEQ] [--limit N] [--all] [--json]",
		Short: "Read the audit log, oldest first",
		Args:  cobra.NoArgs,
		RunE: adminRun(s, f, func(ctx context.Context, c *httpapi.Client, _ []string) error {
			var events []httpapi.AuditEvent
			for {
				page, err := c.ListAudit(ctx, q)
				if err != nil {
					return err
				}
				events = append(events, page.Events...)
				if page.Next == 0 || !all {
					if page.Next != 0 {
						fmt.Fprintf(s.Err, "more events: --after %d (or --all)\n", page.Next)
					}
					break
				}
				q.After = page.Next
			}
			if asJSON {
				return s.PrintJSON(httpapi.AuditList{Events: events})
			}
			var rows [][]string
			for _, e := range events {
				rows = append(rows, []string{fmt.Sprint(e.Seq), formatTime(e.Time), e.Actor, e.Action, e.Subject, e.Outcome, e.RemoteAddr, e.Detail})
			}
			return s.Table("SEQ\tTIME\tACTOR\tACTION\tSUBJECT\tOUTCOME\tADDRESS\tDETAIL", rows)
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&q.Actor, "actor", "", "only events by `ACTOR` (token:ID, device:IDENTITY, anonymous, system)")
	fl.StringVar(&q.Action, "action", "", "only events of `ACTION` (e.g. manifest.import)")
	fl.StringVar(&q.Subject, "subject", "", "only events about `SUBJECT` (e.g. device:IDENTITY)")
	fl.Int64Var(&q.After, "after", 0, "start after sequence number `SEQ`")
	fl.IntVar(&q.Limit, "limit", 0, "page size, 1 to 1000 (default 100)")
	fl.BoolVar(&all, "all", false, "follow every page")
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
