package evidence

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// contentVerifier is the second pass: what each member says. The archive
// order the exporter writes (CAs, stations, products, batches, firmware,
// devices, audit) puts every record before the members that refer to it.
type contentVerifier struct {
	pub       crypto.PublicKey
	opts      Options
	rep       Report
	roots     [][]byte
	issuing   [][]byte
	trusted   map[[32]byte]bool
	stations  map[string]crypto.PublicKey
	products  map[string]ProductRecord
	batches   map[string]BatchRecord
	firmware  map[string]FirmwareRecord
	devices   map[string]DeviceRecord
	byBatch   map[string][]string
	certsSeen map[string]bool
}

func newContentVerifier(pub crypto.PublicKey, opts Options) *contentVerifier {
	return &contentVerifier{pub: pub, opts: opts, stations: map[string]crypto.PublicKey{}, products: map[string]ProductRecord{},
		batches: map[string]BatchRecord{}, firmware: map[string]FirmwareRecord{}, devices: map[string]DeviceRecord{},
		byBatch: map[string][]string{}, certsSeen: map[string]bool{}}
}

func (v *contentVerifier) report(members int) *Report {
	v.rep.Members = members
	v.rep.Devices = len(v.devices)
	return &v.rep
}

func (v *contentVerifier) run(ctx context.Context, r io.Reader, m *Manifest) error {
	if v.opts.Trust != nil {
		if err := v.loadTrust(); err != nil {
			return err
		}
	}
	tr := tar.NewReader(r)
	for range m.Members {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err != nil {
			return fail("", "second read: %v", err)
		}
		limit := int64(MaxSmallMember)
		if strings.HasSuffix(h.Name, ".img") {
			limit = firmware.MaxImageSize
		}
		b, err := readMember(tr, h, limit)
		if err != nil {
			return err
		}
		if err := v.member(h.Name, b); err != nil {
			return err
		}
	}
	if v.rep.Pack.Format == "" {
		return fail(MemberPack, "missing")
	}
	return v.checkManifests(ctx)
}

// member dispatches on the member's name.
func (v *contentVerifier) member(name string, b []byte) error {
	dir, file := path.Split(name)
	switch {
	case name == MemberPack:
		return v.pack(b)
	case name == MemberAuditKey:
		return v.auditKey(b)
	case name == MemberSummary:
		return nil // for people; the table is not evidence
	case dir == "ca/":
		return v.ca(name, file, b)
	case dir == "stations/":
		return v.station(name, file, b)
	case dir == "products/":
		return v.product(name, file, b)
	case dir == "batches/":
		return v.batch(name, file, b)
	case dir == "firmware/":
		return v.firmwareMember(name, file, b)
	case dir == "audit/":
		return v.audit(name, file, b)
	case strings.HasPrefix(dir, "devices/"):
		return v.deviceMember(name, b)
	}
	return fail(name, "not a member this format defines")
}

func (v *contentVerifier) pack(b []byte) error {
	var p Pack
	if err := decodeStrict(MemberPack, b, &p); err != nil {
		return err
	}
	if p.Format != Format {
		return fail(MemberPack, "format %q, want %q", p.Format, Format)
	}
	v.rep.Pack = p
	return nil
}

func (v *contentVerifier) auditKey(b []byte) error {
	k, err := sigalg.ParsePublicKeyPEM(b)
	if err != nil {
		return fail(MemberAuditKey, "does not parse: %v", err)
	}
	got, err1 := sigalg.MarshalPublicKey(k)
	want, err2 := sigalg.MarshalPublicKey(v.pub)
	if err1 != nil || err2 != nil || !bytes.Equal(got, want) {
		return fail(MemberAuditKey, "is not the audit key given")
	}
	return nil
}

func (v *contentVerifier) loadTrust() error {
	v.trusted = map[[32]byte]bool{}
	rest := v.opts.Trust
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type == "CERTIFICATE" {
			v.trusted[sha256.Sum256(blk.Bytes)] = true
		}
	}
	if len(v.trusted) == 0 {
		return errors.New("trust bundle: no certificate")
	}
	return nil
}

// onePEM decodes a member holding exactly one certificate.
func onePEM(name string, b []byte) ([]byte, error) {
	blk, rest := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fail(name, "want exactly one PEM certificate")
	}
	if _, err := pki.ParseCertificate(blk.Bytes); err != nil {
		return nil, fail(name, "certificate does not parse: %v", err)
	}
	return blk.Bytes, nil
}

func (v *contentVerifier) ca(name, file string, b []byte) error {
	der, err := onePEM(name, b)
	if err != nil {
		return err
	}
	switch {
	case strings.HasSuffix(file, "-root.pem"):
		if v.trusted != nil && !v.trusted[sha256.Sum256(der)] {
			return fail(name, "CA root is not in the trust bundle given")
		}
		if len(v.roots) >= 16 {
			return fail(name, "too many CA roots")
		}
		v.roots = append(v.roots, der)
	case strings.HasSuffix(file, "-issuing.pem"):
		if len(v.issuing) >= 16 {
			return fail(name, "too many issuing CAs")
		}
		v.issuing = append(v.issuing, der)
	default:
		return fail(name, "not a member this format defines")
	}
	return nil
}

// keyMatches parses a DER SubjectPublicKeyInfo and checks that its
// SHA-256 is id, as every Hallmark identity is.
func keyMatches(name, what, id string, spki []byte) (crypto.PublicKey, error) {
	want, err := identity.Parse(id)
	if err != nil {
		return nil, fail(name, "%s identity %q: %v", what, id, err)
	}
	if identity.FromSPKI(spki) != want {
		return nil, fail(name, "%s identity is not the SHA-256 of its public key", what)
	}
	pub, err := sigalg.ParsePublicKey(spki)
	if err != nil {
		return nil, fail(name, "%s public key does not parse: %v", what, err)
	}
	return pub, nil
}

func (v *contentVerifier) station(name, file string, b []byte) error {
	var s StationRecord
	if err := decodeStrict(name, b, &s); err != nil {
		return err
	}
	if file != s.ID+".json" {
		return fail(name, "names station %s", s.ID)
	}
	pub, err := keyMatches(name, "station", s.ID, s.PublicKey)
	if err != nil {
		return err
	}
	v.stations[s.ID] = pub
	return nil
}

func (v *contentVerifier) product(name, file string, b []byte) error {
	var p ProductRecord
	if err := decodeStrict(name, b, &p); err != nil {
		return err
	}
	if file != p.ID+".json" {
		return fail(name, "names product %s", p.ID)
	}
	for _, r := range p.FirmwareRoots {
		if _, err := hash32(r); err != nil {
			return fail(name, "firmware root %q: %v", r, err)
		}
	}
	v.products[p.ID] = p
	return nil
}

func (v *contentVerifier) batch(name, file string, b []byte) error {
	var r BatchRecord
	if err := decodeStrict(name, b, &r); err != nil {
		return err
	}
	if file != r.ID+".json" {
		return fail(name, "names batch %s", r.ID)
	}
	if _, ok := v.stations[r.Station]; !ok {
		return fail(name, "station %s is not in the pack", r.Station)
	}
	if _, err := hash32(r.ManifestDigest); err != nil {
		return fail(name, "manifest digest: %v", err)
	}
	v.batches[r.ID] = r
	return nil
}

func (v *contentVerifier) firmwareMember(name, file string, b []byte) error {
	if digest, ok := strings.CutSuffix(file, ".json"); ok {
		var r FirmwareRecord
		if err := decodeStrict(name, b, &r); err != nil {
			return err
		}
		if r.Digest != digest {
			return fail(name, "names image %s", r.Digest)
		}
		if _, ok := v.products[r.Product]; !ok {
			return fail(name, "product %s is not in the pack", r.Product)
		}
		v.firmware[digest] = r
		return nil
	}
	digest, ok := strings.CutSuffix(file, ".img")
	if !ok {
		return fail(name, "not a member this format defines")
	}
	rec, ok := v.firmware[digest]
	if !ok {
		return fail(name, "no firmware/%s.json before it", digest)
	}
	return v.image(name, rec, b)
}

// image checks an image file as the product's boot ROM would, but for
// the decryption: the same file (digest), signed by every live root of
// the product's firmware policy.
func (v *contentVerifier) image(name string, rec FirmwareRecord, b []byte) error {
	sum := sha256.Sum256(b)
	if hex.EncodeToString(sum[:]) != rec.Digest {
		return fail(name, "SHA-256 is not the digest its record names")
	}
	img, err := firmware.Parse(b)
	if err != nil {
		return fail(name, "%v", err)
	}
	p := v.products[rec.Product]
	policy := firmware.Policy{Retired: firmware.SlotMask(p.RetiredSlots)}
	for _, r := range p.FirmwareRoots {
		h, _ := hash32(r) // checked in product
		policy.RootKeyHashes = append(policy.RootKeyHashes, h)
	}
	if _, err := firmware.VerifyEnvelope(img, policy); err != nil {
		return fail(name, "firmware signature check against product %s's roots failed: %v", rec.Product, err)
	}
	hdr := img.Header()
	if hdr.Version.String() != rec.Version || hdr.SecurityCounter != rec.SecurityCounter {
		return fail(name, "header says version %s counter %d, its record %s counter %d", hdr.Version, hdr.SecurityCounter, rec.Version, rec.SecurityCounter)
	}
	v.rep.Firmware++
	return nil
}

func (v *contentVerifier) deviceMember(name string, b []byte) error {
	id, file, ok := memberDir(name, "devices/")
	if !ok || strings.Contains(file, "/") {
		return fail(name, "not a member this format defines")
	}
	if file == "device.json" {
		return v.device(name, id, b)
	}
	if _, ok := v.devices[id]; !ok {
		return fail(name, "no devices/%s/device.json before it", id)
	}
	switch {
	case strings.HasPrefix(file, "cert-") && strings.HasSuffix(file, ".pem"):
		return v.certificate(name, id, strings.TrimSuffix(strings.TrimPrefix(file, "cert-"), ".pem"), b)
	case file == "certificates.json":
		var recs []CertificateRecord
		return decodeStrict(name, b, &recs)
	case file == "status.json":
		var s StatusRecord
		return decodeStrict(name, b, &s)
	case file == "events.jsonl":
		return checkLines(name, b)
	}
	return fail(name, "not a member this format defines")
}

func checkLines(name string, b []byte) error {
	for i, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		if len(line) == 0 && len(b) == 0 {
			return nil
		}
		var e EventRecord
		if err := decodeStrict(name, line, &e); err != nil {
			return fail(name, "line %d does not parse", i+1)
		}
	}
	return nil
}

func (v *contentVerifier) device(name, id string, b []byte) error {
	var d DeviceRecord
	if err := decodeStrict(name, b, &d); err != nil {
		return err
	}
	if d.Identity != id {
		return fail(name, "names device %s", d.Identity)
	}
	if _, err := keyMatches(name, "device", d.Identity, d.PublicKey); err != nil {
		return err
	}
	if _, ok := v.stations[d.Station]; !ok {
		return fail(name, "station %s is not in the pack", d.Station)
	}
	if b, ok := v.batches[d.Batch]; !ok || b.Station != d.Station {
		return fail(name, "batch %s of station %s is not in the pack", d.Batch, d.Station)
	}
	if len(v.devices) >= MaxDevices {
		return fail(name, "more than %d devices", MaxDevices)
	}
	v.devices[id] = d
	v.byBatch[d.Batch] = append(v.byBatch[d.Batch], id)
	return nil
}

func (v *contentVerifier) certificate(name, id, serial string, b []byte) error {
	der, err := onePEM(name, b)
	if err != nil {
		return err
	}
	leaf, _ := pki.ParseCertificate(der) // parsed in onePEM
	if hex.EncodeToString(leaf.SerialNumber.FillBytes(make([]byte, 16))) != serial {
		return fail(name, "serial is not %s", serial)
	}
	if _, err := pki.VerifyChain(der, v.issuing, v.roots, at(leaf.NotBefore), x509.ExtKeyUsageAny); err != nil {
		return fail(name, "does not chain to the pack's CA certificates: %v", err)
	}
	v.rep.Certificates++
	return nil
}

func (v *contentVerifier) audit(name, file string, b []byte) error {
	var r ProofRecord
	if err := decodeStrict(name, b, &r); err != nil {
		return err
	}
	if file != fmt.Sprintf("%012d.json", r.Pos) {
		return fail(name, "holds entry %d", r.Pos)
	}
	p, err := r.proof()
	if err != nil {
		return fail(name, "%v", err)
	}
	if err := p.Verify(v.pub); err != nil {
		return fail(name, "audit entry %d: %v", r.Pos, err)
	}
	v.rep.AuditEntries++
	return nil
}

// checkManifests verifies the original manifests given: the station's
// signature, the digest the platform recorded, and each device's record.
func (v *contentVerifier) checkManifests(ctx context.Context) error {
	for batch, file := range v.opts.Manifests {
		name := "batches/" + batch + ".json"
		rec, ok := v.batches[batch]
		if !ok {
			return fail(name, "not in the pack, but a manifest of that batch was given")
		}
		want := map[string]DeviceRecord{}
		for _, id := range v.byBatch[batch] {
			want[id] = v.devices[id]
		}
		sum, err := manifest.Verify(ctx, bytes.NewReader(file), v.stations[rec.Station], func(r manifest.Record) error {
			d, ok := want[r.Identity.String()]
			if !ok {
				return nil
			}
			delete(want, r.Identity.String())
			if !bytes.Equal(r.SPKI, d.PublicKey) || string(r.Algorithm) != d.Algorithm || string(r.RootOfTrust) != d.RootOfTrust {
				return fmt.Errorf("device %s differs from its record in the pack", d.Identity)
			}
			return nil
		})
		if err != nil {
			return fail(name, "the manifest given does not verify with the station's key: %v", err)
		}
		if hex.EncodeToString(sum.Digest[:]) != rec.ManifestDigest {
			return fail(name, "the manifest given has digest %x, the platform imported %s", sum.Digest, rec.ManifestDigest)
		}
		for id := range want {
			return fail("devices/"+id+"/device.json", "not in the station-signed manifest of batch %s", batch)
		}
		v.rep.Manifests++
	}
	return nil
}
