// Command hallmark is the single binary of the Hallmark platform: key tools,
// the simulated PUF and, as the platform grows, the station, the server and
// the device simulator. It only wires subcommands; the work lives in
// internal/cli and the packages it calls.
package main

import (
	"os"

	"github.com/hallmark-iot/hallmark/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
