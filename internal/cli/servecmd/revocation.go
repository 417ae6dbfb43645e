package servecmd

import (
	"github.com/spf13/pflag"

	"github.com/hallmark-iot/hallmark/internal/app"
	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/pki"
)

// revocationFlags are where serve publishes revocation: the plain-HTTP
// listener and the base URL certificates carry.
type revocationFlags struct {
	listen, baseURL string
}

// revocationHelp is serve's help on these flags.
const revocationHelp = `

Revocation: with --revocation-listen ADDRESS and --revocation-base-url
http://HOST[:PORT] the platform serves the issuing CA's CRL over plain HTTP
(it is signed) at BASE/crl/<name>.crl, regenerated within a minute of a
certificate being revoked, suspended or resumed, and at half of its 24-hour
validity; device
certificates issued from then on carry that URL (CRL Distribution Points)
and BASE/ocsp (Authority Information Access). Set both or neither. See
docs/pki.md.`

func (r *revocationFlags) register(f *pflag.FlagSet) {
	f.StringVar(&r.listen, "revocation-listen", "",
		"plain-HTTP `ADDRESS` serving the CRL, e.g. :8080 (default: off; needs --revocation-base-url)")
	f.StringVar(&r.baseURL, "revocation-base-url", "",
		"http:// `URL` at which relying parties reach --revocation-listen; device certificates carry it")
}

// apply checks the flags (the command line's, or the environment's:
// cmdline.ApplyEnv) into cfg.
func (r *revocationFlags) apply(cfg *app.Config) error {
	switch {
	case r.listen == "" && r.baseURL == "":
		return nil
	case r.listen == "":
		return cmdline.Usagef("--revocation-base-url needs --revocation-listen: certificates would name a URL nothing serves")
	case r.baseURL == "":
		return cmdline.Usagef("--revocation-listen needs --revocation-base-url, the URL certificates carry")
	}
	base, err := pki.CheckRevocationBaseURL(r.baseURL)
	if err != nil {
		return cmdline.Usagef("--revocation-base-url: %v", err)
	}
	cfg.RevocationListen, cfg.RevocationBaseURL = r.listen, base
	return nil
}
