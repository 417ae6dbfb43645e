package democmd

import (
	"context"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/connector"
)

// The demo's factory and cloud are the fixture of the device commands'
// end-to-end tests (device_commands_test.go, in package democmd_test so that they
// run the whole command line): a batch made by a station, and a Mosquitto
// trusting the platform's CA.

// Batch is a factory batch.
type Batch = demoBatch

// Dir is the batch directory, which holds devices/device-NNNNNNN.json.
func (b *demoBatch) Dir() string { return b.dir }

// Cloud is a broker the demo started.
type Cloud = demoCloud

// Endpoint, Connectors and Stop export the cloud's methods.
func (c *demoCloud) Endpoint() string { return c.endpoint() }

func (c *demoCloud) Connectors() []connector.Connector { return c.connectors() }

func (c *demoCloud) Stop() { c.stop() }

// Factory and StartCloud are the demo's without --hsm.
func Factory(ctx context.Context, s *cmdline.Streams, dir string) (*Batch, error) {
	return demoFactory(ctx, s, dir, "")
}

func StartCloud(ctx context.Context, s *cmdline.Streams, dir, dataDir string) (*Cloud, error) {
	return startDemoCloud(ctx, s, dir, dataDir, "")
}

var (
	Import         = demoImport
	WaitRegistered = waitRegistered
)
