package admincmd

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
)

func newAdminTokenCmd(s *cmdline.Streams, f *adminFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Create, list and revoke admin tokens"}
	var asJSON bool
	list := &cobra.Command{
		Use:   "list [--json]",
		Short: "List tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: adminRun(s, f, func(ctx context.Context, c *httpapi.Client, _ []string) error {
			tokens, err := c.ListTokens(ctx)
			if err != nil || asJSON {
				return errOrJSON(s, err, httpapi.TokenList{Tokens: tokens})
			}
			var rows [][]string
			for _, t := range tokens {
				rows = append(rows, []string{t.ID, strings.Join(t.Scopes, ","), formatTime(t.CreatedAt),
					formatOptionalTime(t.ExpiresAt), formatOptionalTime(t.RevokedAt), t.Name})
			}
			return s.Table("ID\tSCOPES\tCREATED\tEXPIRES\tREVOKED\tNAME", rows)
		}),
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token; it is refused from then on",
		Args:  cobra.ExactArgs(1),
		RunE: adminRun(s, f, func(ctx context.Context, c *httpapi.Client, args []string) error {
			t, err := c.RevokeToken(ctx, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "revoked token %s at %s\n", cmdline.Safe(t.ID), formatOptionalTime(t.RevokedAt))
			return nil
		}),
	}
	cmd.AddCommand(newAdminTokenCreateCmd(s, f), list, revoke)
	return cmd
}
func newAdminTokenCreateCmd(s *cmdline.Streams, f *adminFlags) *cobra.Command {
	var req httpapi.TokenRequest
	var out string
	var force bool
	create := &cobra.Command{
		Use:   "create --name NAME --scope SCOPE... [--ttl 2160h] [--out FILE]",
		Short: "Create a token; its secret is shown this once",
		Long: `Create an admin token holding the given scopes (repeat --scope or separate with
commas): ` + strings.Join(httpapi.Scopes(), ", ") + `. A token can grant only
scopes it holds itself, and a token that expires can create only tokens that
expire no later than it does. The secret is printed to standard output, or
written to --out FILE with mode 0600; the platform keeps only its hash.`,
		Args: cobra.NoArgs,
		RunE: adminRun(s, f, func(ctx context.Context, c *httpapi.Client, _ []string) error {
			if req.Name == "" || len(req.Scopes) == 0 {
				return cmdline.Usagef("--name and --scope are required")
			}
			created, err := c.CreateToken(ctx, req)
			if err != nil {
				return err
			}
			if err := s.WriteOutput(out, []byte(created.Secret+"\n"), 0o600, force); err != nil {
				return fmt.Errorf("token %s was created but its secret not saved (revoke it): %w", cmdline.Safe(created.Token.ID), err)
			}
			fmt.Fprintf(s.Err, "created token %s (%s), expires %s\n", cmdline.Safe(created.Token.ID),
				cmdline.Safe(strings.Join(created.Token.Scopes, ",")), formatOptionalTime(created.Token.ExpiresAt))
			return nil
		}),
	}
	create.Flags().StringVar(&req.Name, "name", "", "what the token is for (required)")
	create.Flags().StringSliceVar(&req.Scopes, "scope", nil, "`SCOPE` to grant (required; repeatable)")
	create.Flags().StringVar(&req.TTL, "ttl", "", "lifetime, a `DURATION` from 1m to 8760h (default 2160h)")
	create.Flags().StringVarP(&out, "out", "o", "-", "write the secret to `FILE` (mode 0600)")
	create.Flags().BoolVar(&force, "force", false, "replace an existing --out file")
	return create
}
