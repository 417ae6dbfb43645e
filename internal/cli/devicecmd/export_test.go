package devicecmd

import (
	"context"
	"io"
	"strings"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
)

// RunDevice runs `hallmark device run` with args until it returns or ctx
// ends: cli.Main takes no context, and the loop runs until stopped.
func RunDevice(ctx context.Context, out, errOut io.Writer, args ...string) error {
	cmd := newDeviceRunCmd(&cmdline.Streams{In: strings.NewReader(""), Out: out, Err: errOut})
	cmd.SetArgs(args)
	cmd.SetOut(out)
	cmd.SetErr(errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	return cmd.ExecuteContext(ctx)
}
