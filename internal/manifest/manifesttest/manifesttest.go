// Package manifesttest writes batch manifests for tests the way a station
// that does not use manifest.Writer could: canonical lines, correctly
// signed, but with records that nothing checked. Tests use it to send the
// platform what an attacker holding a station key would.
package manifesttest

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// The lines of docs/manifest.md, fields in their canonical order.
type header struct {
	Format           string `json:"format"`
	Batch            string `json:"batch"`
	Station          string `json:"station"`
	StationAlgorithm string `json:"station_algorithm"`
	StationPublicKey string `json:"station_public_key"`
	Created          string `json:"created"`
}

type record struct {
	Seq         uint64 `json:"seq"`
	Identity    string `json:"identity"`
	Algorithm   string `json:"algorithm"`
	PublicKey   string `json:"public_key"`
	RootOfTrust string `json:"root_of_trust"`
	Injection   string `json:"injection"`
	Station     string `json:"station"`
	Time        string `json:"time"`
	Nonce       string `json:"nonce"`
	Proof       string `json:"proof"`
}

type trailer struct {
	Count     uint64 `json:"count"`
	Digest    string `json:"digest"`
	Signature string `json:"signature"`
}

const timeLayout = "2006-01-02T15:04:05Z"

// Forge writes a manifest of batch, signed by station, holding recs as
// given: each record's SPKI (or else the encoding of its PublicKey),
// identity, algorithm, nonce and proof go out unchecked; Seq and Station
// are filled in. Records without a Time get created.
func Forge(station crypto.Signer, batch string, created time.Time, recs []manifest.Record) ([]byte, error) {
	stationSPKI, err := sigalg.MarshalPublicKey(station.Public())
	if err != nil {
		return nil, err
	}
	suite, err := sigalg.SuiteOf(station.Public())
	if err != nil {
		return nil, err
	}
	stationID := identity.FromSPKI(stationSPKI).String()
	b64 := base64.StdEncoding.EncodeToString
	var body bytes.Buffer
	if err := writeLine(&body, header{Format: manifest.Format, Batch: batch, Station: stationID,
		StationAlgorithm: string(suite.ID()), StationPublicKey: b64(stationSPKI), Created: created.UTC().Format(timeLayout)}); err != nil {
		return nil, err
	}
	for i, r := range recs {
		spki := r.SPKI
		if spki == nil {
			if spki, err = sigalg.MarshalPublicKey(r.PublicKey); err != nil {
				return nil, err
			}
		}
		at := r.Time
		if at.IsZero() {
			at = created
		}
		if err := writeLine(&body, record{Seq: uint64(i + 1), Identity: r.Identity.String(), Algorithm: string(r.Algorithm),
			PublicKey: b64(spki), RootOfTrust: string(r.RootOfTrust), Injection: string(r.Injection), Station: stationID,
			Time: at.UTC().Format(timeLayout), Nonce: b64(r.Nonce), Proof: b64(r.Proof)}); err != nil {
			return nil, err
		}
	}
	digest := sha256.Sum256(body.Bytes())
	sig, err := suite.Sign(station, append([]byte(manifest.SignatureContext), digest[:]...))
	if err != nil {
		return nil, err
	}
	if err := writeLine(&body, trailer{Count: uint64(len(recs)), Digest: hex.EncodeToString(digest[:]), Signature: b64(sig)}); err != nil {
		return nil, err
	}
	return body.Bytes(), nil
}

func writeLine(w *bytes.Buffer, v any) error {
	line, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Write(line)
	w.WriteByte('\n')
	return nil
}
