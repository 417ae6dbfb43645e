package admincmd

import (
	"context"
	"crypto"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

func newAdminStationCmd(s *cmdline.Streams, f *adminFlags) *cobra.Command {
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
				return cmdline.Usagef("--name and --public-key are required")
			}
			key, err := s.ReadKey(keyPath)
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
			fmt.Fprintf(s.Out, "registered station %s (%s) %q\n", st.ID, cmdline.Safe(st.Algorithm), st.Name)
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
			return s.Table("ID\tALGORITHM\tCREATED\tNAME", rows)
		}),
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(add, list)
	return cmd
}

func newAdminProductCmd(s *cmdline.Streams, f *adminFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "product", Short: "Create and list products (certificate validity, cloud endpoint)"}
	var req httpapi.ProductRequest
	var addPolicy policyFlags
	var alloc allocationFlags
	add := &cobra.Command{
		Use:   "add --id ID --name NAME --cert-validity 8760h --cloud-endpoint URL [--renewal-window 720h]",
		Short: "Create a product",
		Long: `Create a product: the certificate validity of its devices and the cloud
endpoint they are told to connect to once onboarded.

--cloud-endpoint is the URL of your broker (or cloud service), as devices
will dial it, for example mqtts://mqtt.example.com:8883: it goes into every
onboarded device's credentials, and "hallmark device connect" connects to
it. It must name a host the devices can resolve and reach.

--renewal-window is how long before its certificate expires a device may
renew, for example 2880h (the last third of a 8760h validity); a renewal
before is refused (renewal-not-due) unless an administrator forces one
(hallmark admin device force-renewal). Without it, devices may renew at any
time.

--issuing-ca names the CA that issues the product's device certificates
(hallmark admin ca list), for example ml-dsa-65; without it, the platform's
first CA.

--require-locked accepts only devices whose station-signed manifest record
says the station locked them (debug port, key-store window, bootloader;
hallmark station run locks unless given --leave-open): a manifest listing
a device left open, or written before stations recorded locks, is refused
whole (devices-not-locked, naming the devices).

--allocation hash|webhook spreads devices over the --endpoint URLs (repeat
it; URL=WEIGHT for a share, default 1) instead of one --cloud-endpoint: hash
by a stable hash of each device's identity, webhook by asking
--webhook-url in a POST signed with the secret in --webhook-secret-file
(mode 0600, 16 to 256 bytes). A device's endpoint is decided at its first
certificate and kept (docs/front-doors.md, "Allocation").`,
		Args: cobra.NoArgs,
		RunE: adminRun(s, f, func(ctx context.Context, c *httpapi.Client, _ []string) error {
			if req.ID == "" || req.Name == "" || req.CertValidity == "" || req.CloudEndpoint == "" && len(alloc.endpoints) == 0 {
				return cmdline.Usagef("--id, --name, --cert-validity and --cloud-endpoint (or --endpoint) are required")
			}
			var err error
			if req.Allocation, req.Endpoints, req.WebhookURL, req.WebhookSecret, err = alloc.resolve(s); err != nil {
				return err
			}
			roots, retired, class, err := addPolicy.resolve(s, func(string) bool { return true })
			if err != nil {
				return err
			}
			req.FirmwareRoots, req.FirmwareRetiredSlots, req.FirmwareClassKey = *roots, *retired, *class
			p, err := c.CreateProduct(ctx, req)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "created product %s %q: certificates valid %s, endpoint %s\n", cmdline.Safe(p.ID), p.Name, cmdline.Safe(p.CertValidity), cmdline.Safe(p.CloudEndpoint))
			if alloc.given() {
				fmt.Fprintf(s.Out, "allocation %s\n", cmdline.Safe(describeAllocation(p.Allocation)))
			}
			if p.RenewalWindow != "" && p.RenewalWindow != "0s" {
				fmt.Fprintf(s.Out, "devices may renew in the last %s of a certificate's validity\n", cmdline.Safe(p.RenewalWindow))
			}
			if p.RequireLocked {
				fmt.Fprintf(s.Out, "only devices recorded locked are imported and onboarded\n")
			}
			return nil
		}),
	}
	add.Flags().StringVar(&req.ID, "id", "", "product `ID`: a-z, 0-9 and '-' (required)")
	add.Flags().StringVar(&req.Name, "name", "", "display `NAME` (required)")
	add.Flags().StringVar(&req.CertValidity, "cert-validity", "", "device certificate validity, a `DURATION` such as 8760h (required)")
	add.Flags().StringVar(&req.RenewalWindow, "renewal-window", "", "renewal allowed only this `DURATION` before a certificate expires, such as 720h (default: any time)")
	add.Flags().StringVar(&req.HeartbeatInterval, "heartbeat-interval", "", "report a device silent after this `DURATION` without a status report, such as 1h (default: the server's --heartbeat-interval)")
	add.Flags().StringVar(&req.MinFirmwareVersion, "min-firmware", "", "report devices whose firmware is below this `VERSION`, such as 1.4.0 (default: none)")
	add.Flags().StringVar(&req.IssuingCA, "issuing-ca", "", "the `CA` issuing the product's certificates, such as ml-dsa-65 (hallmark admin ca list; default: the first CA)")
	add.Flags().BoolVar(&req.RequireLocked, "require-locked", false, "accept only devices the station recorded locked (default: any)")
	addPolicy.register(add.Flags())
	alloc.register(add.Flags())
	add.Flags().StringVar(&req.CloudEndpoint, "cloud-endpoint", "", "`URL` of your broker that devices are told to connect to: mqtts://, https:// or wss:// (required)")
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List products",
		Long: `List every product and its policy. REQUIRE LOCKED is yes for a product that
accepts only devices the station recorded locked (add|update --require-locked);
ALLOCATION is static, or hash:/webhook: and the endpoints with their weights
(add|set-allocation --allocation); --json prints the products as the API
answers them (require_locked, allocation).`,
		Args: cobra.NoArgs,
		RunE: adminRun(s, f, func(ctx context.Context, c *httpapi.Client, _ []string) error {
			products, err := c.ListProducts(ctx)
			if err != nil || asJSON {
				return errOrJSON(s, err, httpapi.ProductList{Products: products})
			}
			var rows [][]string
			for _, p := range products {
				rows = append(rows, []string{p.ID, p.CertValidity, p.RenewalWindow, p.HeartbeatInterval, orDash(p.MinFirmwareVersion), orDash(p.IssuingCA),
					yesNo(p.RequireLocked), p.CloudEndpoint, describeAllocation(p.Allocation), p.Name})
			}
			return s.Table("ID\tCERT VALIDITY\tRENEWAL WINDOW\tHEARTBEAT\tMIN FIRMWARE\tISSUING CA\tREQUIRE LOCKED\tCLOUD ENDPOINT\tALLOCATION\tNAME", rows)
		}),
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(add, list, newAdminProductUpdateCmd(s, f), newAdminProductSetAllocationCmd(s, f))
	return cmd
}

func newAdminProductUpdateCmd(s *cmdline.Streams, f *adminFlags) *cobra.Command {
	var window, heartbeat, minFirmware, issuingCA string
	var requireLocked bool
	var policy policyFlags
	cmd := &cobra.Command{
		Use:   "update ID [--renewal-window D] [--heartbeat-interval D] [--min-firmware V] [--issuing-ca CA] [--require-locked=true|false] [--firmware-root FILE|HEX]... [--retired-slot N]... [--class-key CLASS.pub]",
		Short: "Change a product's renewal window, heartbeat interval, minimum firmware version, issuing CA or firmware policy",
		Long: `Change a product's policy; flags not given stay as they are.

--min-firmware raises (or lowers) the firmware version devices should run:
each device below it is reported (a firmware.outdated event) by its next
status report. Give "" to remove the minimum. --heartbeat-interval 0 and
--renewal-window 0 return to the defaults (the server's interval; renewal
at any time).

--firmware-root, --retired-slot and --class-key set what the firmware
repository checks uploads against (hallmark admin firmware upload): the
vendor root keys burned into the devices' OTP, in slot order (each flag
replaces the whole list), the slots retired so far, and the device-class
key encrypted images must be sealed to (--class-key "" removes it).

--issuing-ca moves the product to another of the platform's CAs ("" back to
the first): certificates issued so far stay valid, and each device's next
renewal is issued by the new CA — how a fleet moves to an ML-DSA CA.

--require-locked=true accepts only devices recorded locked from now on:
later imports listing others are refused, and devices imported before but
not recorded locked are refused onboarding (devices already onboarded keep
their certificates). --require-locked=false lifts it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var req httpapi.ProductUpdateRequest
			for name, field := range map[string]**string{"renewal-window": &req.RenewalWindow,
				"heartbeat-interval": &req.HeartbeatInterval, "min-firmware": &req.MinFirmwareVersion, "issuing-ca": &req.IssuingCA} {
				if cmd.Flags().Changed(name) {
					v := cmd.Flags().Lookup(name).Value.String()
					*field = &v
				}
			}
			if cmd.Flags().Changed("require-locked") {
				req.RequireLocked = &requireLocked
			}
			var err error
			if req.FirmwareRoots, req.FirmwareRetiredSlots, req.FirmwareClassKey, err = policy.resolve(s, cmd.Flags().Changed); err != nil {
				return err
			}
			if req.RenewalWindow == nil && req.HeartbeatInterval == nil && req.MinFirmwareVersion == nil && req.IssuingCA == nil &&
				req.FirmwareRoots == nil && req.FirmwareRetiredSlots == nil && req.FirmwareClassKey == nil && req.RequireLocked == nil {
				return cmdline.Usagef("give at least one of --renewal-window, --heartbeat-interval, --min-firmware, --issuing-ca, --require-locked, --firmware-root, --retired-slot, --class-key")
			}
			return adminRun(s, f, func(ctx context.Context, c *httpapi.Client, args []string) error {
				p, err := c.UpdateProduct(ctx, args[0], req)
				if err != nil {
					return err
				}
				minimum := p.MinFirmwareVersion
				if minimum == "" {
					minimum = "none"
				}
				fmt.Fprintf(s.Out, "updated product %s: renewal window %s, heartbeat interval %s, minimum firmware %s\n",
					cmdline.Safe(p.ID), cmdline.Safe(p.RenewalWindow), cmdline.Safe(p.HeartbeatInterval), cmdline.Safe(minimum))
				if req.FirmwareRoots != nil || req.FirmwareRetiredSlots != nil || req.FirmwareClassKey != nil {
					printFirmwarePolicy(s, p)
				}
				if req.RequireLocked != nil {
					fmt.Fprintf(s.Out, "require locked devices: %v\n", p.RequireLocked)
				}
				if req.IssuingCA != nil {
					fmt.Fprintf(s.Out, "issuing CA %s: certificates issued from now on, renewals included, come from it\n", cmdline.Safe(orFirst(p.IssuingCA)))
				}
				return nil
			})(cmd, args)
		},
	}
	cmd.Flags().StringVar(&window, "renewal-window", "", "renewal allowed only this `DURATION` before a certificate expires (0: any time)")
	cmd.Flags().StringVar(&heartbeat, "heartbeat-interval", "", "report a device silent after this `DURATION` (0: the server's default)")
	cmd.Flags().StringVar(&minFirmware, "min-firmware", "", "report devices whose firmware is below this `VERSION` (\"\": none)")
	cmd.Flags().StringVar(&issuingCA, "issuing-ca", "", "move the product to this `CA` (hallmark admin ca list; \"\": the first CA)")
	cmd.Flags().BoolVar(&requireLocked, "require-locked", false, "accept only devices the station recorded locked (=false lifts it)")
	policy.register(cmd.Flags())
	return cmd
}

// yesNo shows a product's boolean policy (require_locked) in a table
// column a script can split on white space.
func yesNo(v bool) string {
	if v {
		return "yes"
	}
	return "no"
}

// orDash shows an empty value as "-".
func orDash(v string) string {
	if v == "" {
		return "-"
	}
	return v
}
