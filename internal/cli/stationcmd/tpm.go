package stationcmd

import "github.com/spf13/pflag"

// bindStationTPM adds --tpm, the TPM that a batch's tpm-class gateways keep
// their keys in (the class "tpm" in --classes needs it).
func bindStationTPM(fl *pflag.FlagSet, addr *string) {
	fl.StringVar(addr, "tpm", "", "TPM `ADDRESS` for tpm-class devices: /dev/tpmrm0, tcp://HOST:PORT (swtpm's command port) or unix:///PATH")
}
