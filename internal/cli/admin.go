package cli

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// adminFlags are the connection flags every admin command shares.
type adminFlags struct {
	server, tokenFile, caFile string
}

func newAdminCmd(s *streams) *cobra.Command {
	f := &adminFlags{}
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Administer a Hallmark platform over its admin API",
		Long: `Register stations and products, import manifests, list and revoke devices, read
the audit log and manage admin tokens on a running platform (hallmark serve).

The connection: --server (or $HALLMARK_SERVER) is the platform's https:// URL;
--ca-file (or $HALLMARK_CA_FILE) the PEM bundle its TLS certificate chains to,
for a platform whose CA is its own (the system's roots otherwise). TLS 1.3 only.
The admin token is read from --token-file or $HALLMARK_TOKEN_FILE, or taken
from $HALLMARK_TOKEN; never from a flag value, which would show in the process
list. A first start of hallmark serve writes an admin token to
DATA_DIR/admin.token.

An error the server answers with is one line: title, detail and code.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.server, "server", "", "platform `URL`, https://host:port (default: $HALLMARK_SERVER)")
	pf.StringVar(&f.tokenFile, "token-file", "", "admin token `FILE` (default: $HALLMARK_TOKEN_FILE, or the token in $HALLMARK_TOKEN)")
	pf.StringVar(&f.caFile, "ca-file", "", "PEM trust bundle `FILE` for the platform's certificate (default: $HALLMARK_CA_FILE, or the system's roots)")
	cmd.AddCommand(newAdminStationCmd(s, f), newAdminProductCmd(s, f), newAdminManifestCmd(s, f),
		newAdminDeviceCmd(s, f), newAdminAuditCmd(s, f), newAdminTokenCmd(s, f))
	return cmd
}

// Limits on what the admin commands read locally.
const (
	maxTokenFile = 4096
	maxCAFile    = 1 << 20
)

// client connects to the platform the flags and environment name.
func (f *adminFlags) client(s *streams) (*httpapi.Client, error) {
	server := firstOf(f.server, os.Getenv("HALLMARK_SERVER"))
	if server == "" {
		return nil, usagef("no server: use --server https://host:port or set HALLMARK_SERVER")
	}
	token, err := f.token(s)
	if err != nil {
		return nil, err
	}
	var roots *x509.CertPool
	if caFile := firstOf(f.caFile, os.Getenv("HALLMARK_CA_FILE")); caFile != "" {
		pemData, err := s.readInput(caFile, maxCAFile, "CA bundle")
		if err != nil {
			return nil, err
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("CA bundle %s: no PEM certificate in it", caFile)
		}
	}
	c, err := httpapi.NewClient(server, token, roots)
	if err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

func (f *adminFlags) token(s *streams) (string, error) {
	path := firstOf(f.tokenFile, os.Getenv("HALLMARK_TOKEN_FILE"))
	if path == "" {
		if t := strings.TrimSpace(os.Getenv("HALLMARK_TOKEN")); t != "" {
			return t, nil
		}
		return "", usagef("no admin token: use --token-file FILE, or set HALLMARK_TOKEN_FILE or HALLMARK_TOKEN")
	}
	data, err := s.readInput(path, maxTokenFile, "admin token")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(data)), nil
}

func firstOf(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// adminRun wraps a command body that needs a client.
func adminRun(s *streams, f *adminFlags, fn func(ctx context.Context, c *httpapi.Client, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := f.client(s)
		if err != nil {
			return err
		}
		return fn(cmd.Context(), c, args)
	}
}

// printJSON writes v as indented JSON, with what a terminal could take
// for a command escaped (safeJSON).
func (s *streams) printJSON(v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = s.out.Write(append(safeJSON(data), '\n'))
	return err
}

// table writes rows under a header, aligned, each cell escaped (safe): a
// cell holds text from the server and must stay one cell of one line.
func (s *streams) table(header string, rows [][]string) error {
	tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, row := range rows {
		cells := make([]string, len(row))
		for i, c := range row {
			cells[i] = safe(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func formatOptionalTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return formatTime(*t)
}

func newAdminStationCmd(s *streams, f *adminFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "station", Short: "Register and list provisioning stations"}
	var name, keyPath string
	add := &cobra.Command{
		Use:   "add --name NAME --public-key FILE",
		Short: "Register a station's public key, so that its manifests can be imported",
		Long: `Register a station's public key (PEM). Given a private key file, only its public
key is sent. The station's identity is the SHA-256 of the key.`,
		Args: cobra.NoArgs,
		RunE: adminRun(s, f, func(ctx context.Context, c *httpapi.Client, _ []string) error {
			if name == "" || keyPath == "" {
				return usagef("--name and --public-key are required")
			}
			key, err := s.readKey(keyPath)
			if err != nil {
				return err
			}
			if signer, ok := key.(crypto.Signer); ok {
				key = signer.Public()
			}
			pemData, err := sigalg.EncodePublicKeyPEM(key)
			if err != nil {
				return err
			}
			st, err := c.CreateStation(ctx, httpapi.StationRequest{Name: name, PublicKey: string(pemData)})
			if err != nil {
				return err
			}
			fmt.Fprintf(s.out, "registered station %s (%s) %q\n", st.ID, safe(st.Algorithm), st.Name)
			return nil
		}),
	}
	add.Flags().StringVar(&name, "name", "", "station `NAME` (required)")
	add.Flags().StringVar(&keyPath, "public-key", "", "station public key PEM `FILE` (required)")
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List registered stations",
		Args:  cobra.NoArgs,
		RunE: adminRun(s, f, func(ctx context.Context, c *httpapi.Client, _ []string) error {
			stations, err := c.ListStations(ctx)
			if err != nil || asJSON {
				return errOrJSON(s, err, httpapi.StationList{Stations: stations})
			}
			var rows [][]string
			for _, st := range stations {
				rows = append(rows, []string{st.ID.String(), st.Algorithm, formatTime(st.CreatedAt), st.Name})
			}
			return s.table("ID\tALGORITHM\tCREATED\tNAME", rows)
		}),
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(add, list)
	return cmd
}

// errOrJSON returns err, or prints v as JSON.
func errOrJSON(s *streams, err error, v any) error {
	if err != nil {
		return err
	}
	return s.printJSON(v)
}

func newAdminProductCmd(s *streams, f *adminFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "product", Short: "Create and list products (certificate validity, cloud endpoint)"}
	var req httpapi.ProductRequest
	add := &cobra.Command{
		Use:   "add --id ID --name NAME --cert-validity 8760h --cloud-endpoint URL",
		Short: "Create a product",
		Args:  cobra.NoArgs,
		RunE: adminRun(s, f, func(ctx context.Context, c *httpapi.Client, _ []string) error {
			if req.ID == "" || req.Name == "" || req.CertValidity == "" || req.CloudEndpoint == "" {
				return usagef("--id, --name, --cert-validity and --cloud-endpoint are required")
			}
			p, err := c.CreateProduct(ctx, req)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.out, "created product %s %q: certificates valid %s, endpoint %s\n", safe(p.ID), p.Name, safe(p.CertValidity), safe(p.CloudEndpoint))
			return nil
		}),
	}
	add.Flags().StringVar(&req.ID, "id", "", "product `ID`: a-z, 0-9 and '-' (required)")
	add.Flags().StringVar(&req.Name, "name", "", "display `NAME` (required)")
	add.Flags().StringVar(&req.CertValidity, "cert-validity", "", "device certificate validity, a `DURATION` such as 8760h (required)")
	add.Flags().StringVar(&req.CloudEndpoint, "cloud-endpoint", "", "`URL` devices connect to: mqtts://, https:// or wss:// (required)")
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List products",
		Args:  cobra.NoArgs,
		RunE: adminRun(s, f, func(ctx context.Context, c *httpapi.Client, _ []string) error {
			products, err := c.ListProducts(ctx)
			if err != nil || asJSON {
				return errOrJSON(s, err, httpapi.ProductList{Products: products})
			}
			var rows [][]string
			for _, p := range products {
				rows = append(rows, []string{p.ID, p.CertValidity, p.CloudEndpoint, p.Name})
			}
			return s.table("ID\tCERT VALIDITY\tCLOUD ENDPOINT\tNAME", rows)
		}),
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(add, list)
	return cmd
}

func newAdminManifestCmd(s *streams, f *adminFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "manifest", Short: "Import signed batch manifests"}
	var product string
	imp := &cobra.Command{
		Use:   "import --product ID FILE",
		Short: "Import a manifest; its devices are registered all or none",
		Long: `Upload a manifest (FILE, or "-" for standard input) as the station wrote it. The
platform verifies it against the registered station's key and registers its
devices in one transaction, or none. Importing the same manifest again changes
nothing. If devices of the manifest belong to another batch, their identities
are printed, one a line, and nothing is imported.`,
		Args: cobra.ExactArgs(1),
		RunE: adminRun(s, f, func(ctx context.Context, c *httpapi.Client, args []string) error {
			if product == "" {
				return usagef("--product is required")
			}
			var body io.Reader = s.in
			if args[0] != stdioMarker {
				file, err := os.Open(args[0])
				if err != nil {
					return fmt.Errorf("read manifest: %w", pathError(err))
				}
				defer file.Close()
				body = file
			}
			res, err := c.ImportManifest(ctx, product, body)
			if err != nil {
				printDuplicates(s, err)
				return err
			}
			if res.AlreadyImported {
				fmt.Fprintf(s.out, "batch %s was imported before (%d devices); nothing changed\n", safe(res.Batch), res.Devices)
				return nil
			}
			fmt.Fprintf(s.out, "imported %d devices of batch %s from station %s into product %s\n", res.Imported, safe(res.Batch), res.Station, safe(res.Product))
			return nil
		}),
	}
	imp.Flags().StringVar(&product, "product", "", "product `ID` of the batch's devices (required)")
	cmd.AddCommand(imp)
	return cmd
}

// printDuplicates lists the identities of a duplicate-devices problem.
func printDuplicates(s *streams, err error) {
	var p *httpapi.Problem
	if !errors.As(err, &p) || p.Code != "duplicate-devices" {
		return
	}
	ids, _ := p.Extensions["duplicates"].([]any)
	for _, id := range ids {
		if id, ok := id.(string); ok {
			fmt.Fprintln(s.out, safe(id))
		}
	}
}

func newAdminAuditCmd(s *streams, f *adminFlags) *cobra.Command {
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
						fmt.Fprintf(s.err, "more events: --after %d (or --all)\n", page.Next)
					}
					break
				}
				q.After = page.Next
			}
			if asJSON {
				return s.printJSON(httpapi.AuditList{Events: events})
			}
			var rows [][]string
			for _, e := range events {
				rows = append(rows, []string{fmt.Sprint(e.Seq), formatTime(e.Time), e.Actor, e.Action, e.Subject, e.Outcome, e.RemoteAddr, e.Detail})
			}
			return s.table("SEQ\tTIME\tACTOR\tACTION\tSUBJECT\tOUTCOME\tADDRESS\tDETAIL", rows)
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

// parseIdentityArg reads an identity argument as a usage error if bad.
func parseIdentityArg(arg string) (identity.ID, error) {
	id, err := identity.Parse(arg)
	if err != nil {
		return id, usagef("%q is not a device identity (64 lowercase hex characters)", arg)
	}
	return id, nil
}

func newAdminDeviceCmd(s *streams, f *adminFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "device", Short: "List, show and revoke registered devices"}
	cmd.AddCommand(newAdminDeviceListCmd(s, f), newAdminDeviceGetCmd(s, f), newAdminDeviceRevokeCmd(s, f))
	return cmd
}

func newAdminDeviceListCmd(s *streams, f *adminFlags) *cobra.Command {
	var q httpapi.DeviceQuery
	var asJSON, all bool
	cmd := &cobra.Command{
		Use:   "list [--state S] [--product ID] [--batch B] [--algorithm A] [--after IDENTITY] [--limit N] [--all] [--json]",
		Short: "List devices in identity order, one page (or --all)",
		Args:  cobra.NoArgs,
		RunE: adminRun(s, f, func(ctx context.Context, c *httpapi.Client, _ []string) error {
			var devices []httpapi.Device
			for {
				page, err := c.ListDevices(ctx, q)
				if err != nil {
					return err
				}
				devices = append(devices, page.Devices...)
				if page.Next == "" || !all {
					if page.Next != "" {
						fmt.Fprintf(s.err, "more devices: --after %s (or --all)\n", safe(page.Next))
					}
					break
				}
				q.After = page.Next
			}
			if asJSON {
				return s.printJSON(httpapi.DeviceList{Devices: devices})
			}
			var rows [][]string
			for _, d := range devices {
				rows = append(rows, []string{d.Identity.String(), d.State, d.Cloud.State, d.Algorithm, d.Product, d.Batch, d.RootOfTrust})
			}
			return s.table("IDENTITY\tSTATE\tCLOUD\tALGORITHM\tPRODUCT\tBATCH\tROOT OF TRUST", rows)
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&q.State, "state", "", "only devices in `STATE`: registered, onboarded, revoked")
	fl.StringVar(&q.Product, "product", "", "only devices of product `ID`")
	fl.StringVar(&q.Batch, "batch", "", "only devices of `BATCH`")
	fl.StringVar(&q.Algorithm, "algorithm", "", "only devices whose key is of suite `ALG`: "+strings.Join(sigalg.Names(), ", "))
	fl.StringVar(&q.After, "after", "", "start after `IDENTITY` (the previous page's last)")
	fl.IntVar(&q.Limit, "limit", 0, "page size, 1 to 1000 (default 100)")
	fl.BoolVar(&all, "all", false, "follow every page")
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newAdminDeviceGetCmd(s *streams, f *adminFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "get IDENTITY [--json]",
		Short: "Show a device: state, product, batch, station, key, certificates, cloud registration",
		Args:  cobra.ExactArgs(1),
		RunE: adminRun(s, f, func(ctx context.Context, c *httpapi.Client, args []string) error {
			id, err := parseIdentityArg(args[0])
			if err != nil {
				return err
			}
			d, err := c.GetDevice(ctx, id)
			if err != nil || asJSON {
				return errOrJSON(s, err, d)
			}
			printDevice(s, d)
			return nil
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printDevice shows a device, a property a line, each value escaped
// (safe).
func printDevice(s *streams, d httpapi.Device) {
	tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	line := func(key, value string) { fmt.Fprintf(tw, "%s:\t%s\n", key, safe(value)) }
	for _, kv := range [][2]string{
		{"identity", d.Identity.String()}, {"state", d.State}, {"algorithm", d.Algorithm},
		{"product", d.Product}, {"batch", d.Batch}, {"station", d.Station.String()},
		{"root of trust", d.RootOfTrust}, {"injection", d.Injection}, {"registered", formatTime(d.CreatedAt)},
		{"onboarded", formatOptionalTime(d.OnboardedAt)}, {"revoked", formatOptionalTime(d.RevokedAt)},
	} {
		line(kv[0], kv[1])
	}
	if d.RevokeReason != "" {
		line("revoke reason", d.RevokeReason)
	}
	for _, c := range d.Certificates {
		status := "valid"
		if c.RevokedAt != nil {
			status = "revoked " + formatTime(*c.RevokedAt)
		}
		line("certificate", fmt.Sprintf("%s  %s .. %s  %s", c.Serial, formatTime(c.NotBefore), formatTime(c.NotAfter), status))
	}
	line("cloud", d.Cloud.State)
	if d.Cloud.LastError != "" {
		line("cloud error", d.Cloud.LastError)
	}
	for _, j := range d.Cloud.Jobs {
		text := fmt.Sprintf("%s %s: %s after %d attempts", j.Kind, j.Connector, j.State, j.Attempts)
		if j.State == "pending" && j.Attempts > 0 {
			text += ", next at " + formatTime(j.NextRunAt)
		}
		line(fmt.Sprintf("job %d", j.ID), text)
	}
	tw.Flush()
}

func newAdminDeviceRevokeCmd(s *streams, f *adminFlags) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "revoke IDENTITY --reason TEXT",
		Short: "Revoke a device and its certificates; it is refused from then on",
		Args:  cobra.ExactArgs(1),
		RunE: adminRun(s, f, func(ctx context.Context, c *httpapi.Client, args []string) error {
			id, err := parseIdentityArg(args[0])
			if err != nil {
				return err
			}
			if reason == "" {
				return usagef("--reason is required")
			}
			d, err := c.RevokeDevice(ctx, id, reason)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.out, "revoked device %s at %s\n", d.Identity, formatOptionalTime(d.RevokedAt))
			return nil
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log (required)")
	return cmd
}

func newAdminTokenCmd(s *streams, f *adminFlags) *cobra.Command {
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
			return s.table("ID\tSCOPES\tCREATED\tEXPIRES\tREVOKED\tNAME", rows)
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
			fmt.Fprintf(s.out, "revoked token %s at %s\n", safe(t.ID), formatOptionalTime(t.RevokedAt))
			return nil
		}),
	}
	cmd.AddCommand(newAdminTokenCreateCmd(s, f), list, revoke)
	return cmd
}

func newAdminTokenCreateCmd(s *streams, f *adminFlags) *cobra.Command {
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
				return usagef("--name and --scope are required")
			}
			created, err := c.CreateToken(ctx, req)
			if err != nil {
				return err
			}
			if err := s.writeOutput(out, []byte(created.Secret+"\n"), 0o600, force); err != nil {
				return fmt.Errorf("token %s was created but its secret not saved (revoke it): %w", safe(created.Token.ID), err)
			}
			fmt.Fprintf(s.err, "created token %s (%s), expires %s\n", safe(created.Token.ID),
				safe(strings.Join(created.Token.Scopes, ",")), formatOptionalTime(created.Token.ExpiresAt))
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
