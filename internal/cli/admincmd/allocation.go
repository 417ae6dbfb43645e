package admincmd

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// allocationFlags are a product's cloud-endpoint allocation policy on the
// command line (docs/front-doors.md, "Allocation").
type allocationFlags struct {
	kind, webhookURL, secretFile string
	endpoints                    []string
}

func (a *allocationFlags) register(f *pflag.FlagSet) {
	f.StringVar(&a.kind, "allocation", "", "how devices are spread over endpoints: static (default), hash or webhook")
	f.StringArrayVar(&a.endpoints, "endpoint", nil, "an endpoint `URL[=WEIGHT]` of a hash or webhook allocation (repeat; weight 1 to 1000, default 1)")
	f.StringVar(&a.webhookURL, "webhook-url", "", "webhook allocation: the `URL` (https) that chooses each device's endpoint")
	f.StringVar(&a.secretFile, "webhook-secret-file", "", "webhook allocation: `FILE` (mode 0600) holding the signing secret, 16 to 256 bytes")
}

func (a *allocationFlags) given() bool {
	return a.kind != "" || len(a.endpoints) > 0 || a.webhookURL != "" || a.secretFile != ""
}

// resolve reads the flags: endpoints parsed, the secret read from its
// file, which must not be readable by others (the secret is a key).
func (a *allocationFlags) resolve(s *cmdline.Streams) (kind string, endpoints []store.WeightedEndpoint, url, secret string, err error) {
	for _, e := range a.endpoints {
		we, err := parseWeightedEndpoint(e)
		if err != nil {
			return "", nil, "", "", err
		}
		endpoints = append(endpoints, we)
	}
	if a.secretFile != "" {
		info, err := os.Stat(a.secretFile)
		if err != nil {
			return "", nil, "", "", cmdline.Usage(cmdline.PathError(err))
		}
		if info.Mode().Perm()&0o077 != 0 {
			return "", nil, "", "", cmdline.Usagef("--webhook-secret-file %s: mode %04o lets others read the secret; chmod 600 it", a.secretFile, info.Mode().Perm())
		}
		b, err := s.Secret(a.secretFile, "")
		if err != nil {
			return "", nil, "", "", err
		}
		secret = string(b)
	}
	return a.kind, endpoints, a.webhookURL, secret, nil
}

// parseWeightedEndpoint reads URL or URL=WEIGHT; a URL's own '=' (in a
// query) is kept when what follows the last one is not a number.
func parseWeightedEndpoint(v string) (store.WeightedEndpoint, error) {
	if i := strings.LastIndexByte(v, '='); i > 0 {
		if w, err := strconv.Atoi(v[i+1:]); err == nil {
			if w < 1 || w > store.MaxAllocationWeight {
				return store.WeightedEndpoint{}, cmdline.Usagef("--endpoint %s: weight must be 1 to %d", cmdline.Safe(v), store.MaxAllocationWeight)
			}
			return store.WeightedEndpoint{URL: v[:i], Weight: w}, nil
		}
	}
	return store.WeightedEndpoint{URL: v, Weight: 1}, nil
}

// describeAllocation is the one-line summary the CLI prints of a policy.
func describeAllocation(a httpapi.ProductAllocation) string {
	if a.Kind == store.AllocationStatic || a.Kind == "" {
		return "static"
	}
	var parts []string
	for _, e := range a.Endpoints {
		parts = append(parts, fmt.Sprintf("%s=%d", e.URL, e.Weight))
	}
	out := a.Kind + ":" + strings.Join(parts, ",")
	if a.WebhookURL != "" {
		out += " via " + a.WebhookURL
	}
	return out
}

func newAdminProductSetAllocationCmd(s *cmdline.Streams, f *adminFlags) *cobra.Command {
	var flags allocationFlags
	cmd := &cobra.Command{
		Use:   "set-allocation ID --allocation static|hash|webhook --endpoint URL[=WEIGHT]... [--webhook-url URL --webhook-secret-file FILE]",
		Short: "Replace a product's cloud-endpoint allocation policy",
		Long: `Replace how a product spreads its devices over cloud endpoints
(docs/front-doors.md, "Allocation"):

  static   every device gets the one --endpoint (the product's endpoint)
  hash     a device gets one of the --endpoint URLs by a stable hash of its
           identity, in proportion to the weights (URL=WEIGHT, default 1)
  webhook  --webhook-url is asked, in a signed POST, which of the --endpoint
           URLs a device gets; it must answer one of them

A device's endpoint is decided at its first certificate and kept: devices
already allocated keep theirs, and only devices not yet allocated follow the
new policy.`,
		Args: cobra.ExactArgs(1),
		RunE: adminRun(s, f, func(ctx context.Context, c *httpapi.Client, args []string) error {
			if flags.kind == "" || len(flags.endpoints) == 0 {
				return cmdline.Usagef("--allocation and at least one --endpoint are required")
			}
			kind, endpoints, url, secret, err := flags.resolve(s)
			if err != nil {
				return err
			}
			p, err := c.SetAllocation(ctx, args[0], httpapi.AllocationRequest{Allocation: kind, Endpoints: endpoints, WebhookURL: url, WebhookSecret: secret})
			if err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "product %s: allocation %s; devices already allocated keep their endpoint\n", cmdline.Safe(p.ID), cmdline.Safe(describeAllocation(p.Allocation)))
			return nil
		}),
	}
	flags.register(cmd.Flags())
	return cmd
}
