package app

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hallmark-iot/hallmark/internal/keys"
	// The software key store serves the default CA key URI; other
	// backends join by being imported here when they land.
	_ "github.com/hallmark-iot/hallmark/internal/keys/softkms"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// ErrCASuite reports a CA suite the platform does not offer.
var ErrCASuite = errors.New("suite not offered for the CA")

// CASuites are the suites a CA may use, the default first: ECDSA P-256,
// which every TLS stack verifies, and ML-DSA-65, the post-quantum CA with
// an ECDSA TLS root beside it (decision 0004). They are the two the CA's
// tests, docs/pki.md and the demo cover; Ed25519 and ML-DSA-44/87 stay
// device suites, so that each CA suite offered is one that is exercised.
func CASuites() []sigalg.ID { return []sigalg.ID{sigalg.ECDSAP256, sigalg.MLDSA65} }

// checkCASuite returns the canonical name of id if a CA may use it.
func checkCASuite(id sigalg.ID) (sigalg.ID, error) {
	suite, err := id.Suite()
	if err != nil {
		return "", fmt.Errorf("serve: CA suite: %w", err)
	}
	if !slices.Contains(CASuites(), suite.ID()) {
		return "", fmt.Errorf("serve: CA suite %s: %w (a CA may use %s)", suite.ID(), ErrCASuite, caSuiteNames())
	}
	return suite.ID(), nil
}

func caSuiteNames() string {
	var names []string
	for _, id := range CASuites() {
		names = append(names, string(id))
	}
	return strings.Join(names, ", ")
}

// DefaultCAKeyURI is the CA key URI when Config.CAKeyURI is empty: the
// software key store in the data directory, where the CA's keys have
// always been.
func DefaultCAKeyURI(dataDir string) string {
	return "soft:" + filepath.Join(dataDir, KeysDir)
}

// checkCAKeyURI refuses, before anything is created, a CA key URI whose
// scheme no linked backend serves (a planned one such as pkcs11: says
// why), and fills in the default.
func (c *Config) checkCAKeyURI() error {
	if c.CAKeyURI == "" {
		c.CAKeyURI = DefaultCAKeyURI(c.DataDir)
	}
	if err := keys.CheckURI(c.CAKeyURI); err != nil {
		return fmt.Errorf("serve: CA key URI: %w", err)
	}
	return nil
}
