package democmd

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/keys/softkms"
	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/station"
)

// demoFactory runs a provisioning station in a temporary directory: a
// vendor signs the IEF with a hybrid ECDSA + ML-DSA root, the station
// enrols one device of every class and suite, and the manifest is verified
// against the station key. With tpmAddr (demo --hsm), one tpm-class
// gateway whose keys live in the TPM there joins the batch.
func demoFactory(ctx context.Context, s *cmdline.Streams, dir, tpmAddr string) (*demoBatch, error) {
	ief, vendor, roots, err := demoIEF()
	if err != nil {
		return nil, err
	}
	passphrase := make([]byte, 32)
	rand.Read(passphrase)
	ks, err := softkms.Open(ctx, filepath.Join(dir, "keystore"), passphrase)
	if err != nil {
		return nil, err
	}
	defer ks.Close()
	stationPub, err := ks.CreateKey(ctx, keys.CreateKeyRequest{Name: "station", Suite: sigalg.MLDSA65})
	if err != nil {
		return nil, err
	}
	plan, err := station.NewPlan(station.ClassLabels, sigalg.Names())
	if err != nil {
		return nil, err
	}
	if tpmAddr != "" {
		// A TPM 2.0 signs with ECDSA P-256 only (docs/tpm.md).
		plan.Kinds = append(plan.Kinds, station.Kind{Class: device.ClassTPM, Algorithm: sigalg.ECDSAP256})
	}
	batch := filepath.Join(dir, "batch")
	sum, err := station.Run(ctx, station.Config{Dir: batch, Count: len(plan.Kinds), Plan: plan, IEF: ief,
		RootKeyHashes: roots, Keys: ks, KeyName: "station", TPM: tpmAddr})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(s.Out, "\nFactory: the station enrolled %d devices (%d rejected) in %s; IEF signed by an ECDSA P-256 and an ML-DSA-65 root.\n\n",
		sum.Enrolled, sum.Rejected, sum.Elapsed.Round(1e6))
	if err := demoManifestTable(ctx, s, sum.Manifest, stationPub); err != nil {
		return nil, err
	}
	return &demoBatch{dir: batch, manifest: sum.Manifest, stationPub: stationPub, ief: ief, vendor: vendor}, nil
}

// demoBatch is what the factory hands the platform part of the demo.
type demoBatch struct {
	dir, manifest string
	stationPub    crypto.PublicKey
	ief           []byte
	// vendor are the firmware vendor's root keys in OTP slot order: ECDSA
	// P-256 in slot 0, ML-DSA-65 in slot 1. The over-the-air part signs
	// its updates with them.
	vendor []crypto.Signer
}

// demoIEF makes a vendor with two root keys and the IEF they both sign.
func demoIEF() ([]byte, []crypto.Signer, [][32]byte, error) {
	img, err := firmware.New(firmware.Metadata{Type: firmware.TypeIEF, SecurityCounter: 1}, device.IEFPayload())
	if err != nil {
		return nil, nil, nil, err
	}
	var roots [][32]byte
	var vendor []crypto.Signer
	for _, id := range []sigalg.ID{sigalg.ECDSAP256, sigalg.MLDSA65} {
		suite, err := id.Suite()
		if err != nil {
			return nil, nil, nil, err
		}
		key, err := suite.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, nil, err
		}
		if err := img.Sign(key); err != nil {
			return nil, nil, nil, err
		}
		spki, err := sigalg.MarshalPublicKey(key.Public())
		if err != nil {
			return nil, nil, nil, err
		}
		roots, vendor = append(roots, sha256.Sum256(spki)), append(vendor, key)
	}
	ief, err := img.MarshalBinary()
	return ief, vendor, roots, err
}

func demoManifestTable(ctx context.Context, s *cmdline.Streams, path string, stationPub any) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tCLASS\tALGORITHM\tKEY INJECTION\tIDENTITY\tPROOF")
	sum, err := manifest.Verify(ctx, f, stationPub, func(r manifest.Record) error {
		_, err := fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\tverified\n", r.Seq, r.RootOfTrust, r.Algorithm, r.Injection, r.Identity.Short())
		return err
	})
	if err != nil {
		return fmt.Errorf("verify manifest: %w", err)
	}
	tw.Flush()
	_, err = fmt.Fprintf(s.Out, "\nManifest %s: %d devices, signed by station %s (%s), signature verified.\n",
		sum.Header.Batch, sum.Count, sum.Header.Station.Short(), sum.Header.StationAlgorithm)
	return err
}
