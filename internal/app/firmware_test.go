package app

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/firmwarerepo"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/ota"
	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
	"github.com/hallmark-iot/hallmark/internal/store/postgres/pgtest"
)

// The firmware repository as a vendor, an operator and a device see it
// over HTTPS (docs/ota.md, "Firmware repository"): every image the
// product's devices would refuse is refused with its own code and leaves
// nothing behind; a product's onboarded devices download its images, in
// ranges; nobody else learns whether an image exists.

// firmwareEnv is a platform whose product "meter" has a hybrid firmware
// policy (a classical and a post-quantum root) and a device-class key.
type firmwareEnv struct {
	p       *Platform
	dir     string
	f       *fleet
	admin   *httpapi.Client
	ec, pq  crypto.Signer
	class   *sealing.PrivateKey
	payload []byte
}

func newFirmwareEnv(t *testing.T) *firmwareEnv {
	t.Helper()
	dir := newDataDir(t)
	e := &firmwareEnv{p: start(t, dir, sigalg.ECDSAP256), dir: dir, f: newFleet(t, sigalg.ECDSAP256, sigalg.ECDSAP256)}
	e.admin = adminClient(t, e.p)
	e.f.register(t, e.admin)
	e.ec, e.pq = firmwareKey(t, sigalg.ECDSAP256), firmwareKey(t, sigalg.MLDSA65)
	var err error
	if e.class, err = sealing.GenerateKey(sealing.X25519); err != nil {
		t.Fatal(err)
	}
	e.payload = make([]byte, 300<<10) // large enough for several TLS records per range
	rand.Read(e.payload)
	roots, class := []string{rootHex(t, e.ec), rootHex(t, e.pq)}, fingerprintHex(e.class.Public())
	p, err := e.admin.UpdateProduct(context.Background(), "meter", httpapi.ProductUpdateRequest{FirmwareRoots: &roots, FirmwareClassKey: &class})
	if err != nil {
		t.Fatal(err)
	}
	if !slicesEqual(p.FirmwareRoots, roots) || p.FirmwareClassKey != class || len(p.FirmwareRetiredSlots) != 0 {
		t.Fatalf("product after the policy update: %+v", p)
	}
	return e
}

func slicesEqual(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

func firmwareKey(t *testing.T, alg sigalg.ID) crypto.Signer {
	t.Helper()
	s, err := alg.Suite()
	if err != nil {
		t.Fatal(err)
	}
	k, err := s.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func rootHex(t *testing.T, k crypto.Signer) string {
	t.Helper()
	id, err := identity.FromPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

func fingerprintHex(k *sealing.PublicKey) string {
	fp := k.Fingerprint()
	return hex.EncodeToString(fp[:])
}

// image builds an image of the env's payload: of type typ, encrypted to
// class unless nil, signed by keys in order.
func (e *firmwareEnv) image(t *testing.T, typ firmware.ImageType, class *sealing.PublicKey, keys ...crypto.Signer) []byte {
	t.Helper()
	img, err := firmware.New(firmware.Metadata{Type: typ, Version: firmware.Version{Major: 1, Minor: 2, Patch: 3}, SecurityCounter: 5}, e.payload)
	if err != nil {
		t.Fatal(err)
	}
	if class != nil {
		if err := img.Encrypt(class); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range keys {
		if err := img.Sign(k); err != nil {
			t.Fatal(err)
		}
	}
	data, err := img.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// stored is what the repository holds: its records and its blob files.
func (e *firmwareEnv) stored(t *testing.T) (records, blobs int) {
	t.Helper()
	list, err := e.p.Store.ListFirmwareImages(context.Background(), store.FirmwareFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(firmwarerepo.BlobDir(e.dir))
	if err != nil {
		t.Fatal(err)
	}
	return len(list), len(entries)
}

// TestFirmwareUploadRefusals: each image the product's devices would not
// boot, and each caller who may not upload, is refused with its own
// code, and neither a record nor a blob file is left.
func TestFirmwareUploadRefusals(t *testing.T) {
	t.Parallel()
	e := newFirmwareEnv(t)
	ctx := context.Background()
	stranger := firmwareKey(t, sigalg.Ed25519)
	otherClass, err := sealing.GenerateKey(sealing.X25519)
	if err != nil {
		t.Fatal(err)
	}
	// A product whose classical slot 0 is retired.
	legacy := httpapi.ProductRequest{ID: "legacy", Name: "Legacy", CertValidity: "720h", CloudEndpoint: "mqtts://broker.test:8883",
		FirmwareRoots: []string{rootHex(t, e.ec), rootHex(t, e.pq)}, FirmwareRetiredSlots: []int{0}}
	if _, err := e.admin.CreateProduct(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.CreateProduct(ctx, httpapi.ProductRequest{ID: "bare", Name: "Bare", CertValidity: "720h", CloudEndpoint: "mqtts://broker.test:8883"}); err != nil {
		t.Fatal(err)
	}
	reader := lifecycleToken(t, e.p, e.admin, "firmware:read")
	good := e.image(t, firmware.TypeApplication, e.class.Public(), e.ec, e.pq)
	cases := []struct {
		name, product string
		client        *httpapi.Client
		data          []byte
		code          string
	}{
		{"token without firmware:write", "meter", reader, good, "forbidden"},
		{"signed by a stranger", "meter", e.admin, e.image(t, firmware.TypeApplication, nil, stranger), firmwarerepo.CodeUntrusted},
		{"one of two hybrid roots", "meter", e.admin, e.image(t, firmware.TypeApplication, nil, e.ec), firmwarerepo.CodeHybridIncomplete},
		{"only under a retired slot", "legacy", e.admin, e.image(t, firmware.TypeApplication, nil, e.ec), firmwarerepo.CodeRetiredRoot},
		{"encrypted to another class key", "meter", e.admin, e.image(t, firmware.TypeApplication, otherClass.Public(), e.ec, e.pq), firmwarerepo.CodeWrongRecipient},
		{"encrypted for a product without class key", "legacy", e.admin, e.image(t, firmware.TypeApplication, e.class.Public(), e.pq), firmwarerepo.CodeWrongRecipient},
		{"truncated", "meter", e.admin, good[:len(good)-1], firmwarerepo.CodeMalformed},
		{"not an image", "meter", e.admin, []byte("#!/bin/sh\nreboot\n"), firmwarerepo.CodeMalformed},
		{"enrolment firmware", "meter", e.admin, e.image(t, firmware.TypeIEF, nil, e.ec, e.pq), firmwarerepo.CodeWrongType},
		{"product without firmware roots", "bare", e.admin, good, firmwarerepo.CodeNoPolicy},
		{"unknown product", "no-such", e.admin, good, "not-found"},
	}
	for _, c := range cases {
		_, err := c.client.UploadFirmware(ctx, c.product, bytes.NewReader(c.data))
		if !isProblem(err, c.code) {
			t.Errorf("%s: %v, want %s", c.name, err, c.code)
		}
		if records, blobs := e.stored(t); records != 0 || blobs != 0 {
			t.Fatalf("%s: %d records and %d blob files left", c.name, records, blobs)
		}
	}
	// Oversize: a declared length over the limit is refused before the
	// body is read; one that declares none is cut off at the limit.
	token, err := os.ReadFile(e.p.AdminTokenPath())
	if err != nil {
		t.Fatal(err)
	}
	for _, declared := range []bool{true, false} {
		body := io.MultiReader(bytes.NewReader(good), io.LimitReader(zeros{}, firmware.MaxImageSize))
		req, err := http.NewRequest("POST", e.p.URL()+"/v1/admin/products/meter/firmware", body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = -1
		if declared {
			req.ContentLength = int64(len(good)) + firmware.MaxImageSize
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		req.Header.Set("Content-Type", "application/octet-stream")
		status, code := problemOf(t, tlsClient(e.p, nil), req)
		if status != http.StatusRequestEntityTooLarge || code != "body-too-large" {
			t.Errorf("oversize (declared %v): %d %s, want 413 body-too-large", declared, status, code)
		}
	}
	if records, blobs := e.stored(t); records != 0 || blobs != 0 {
		t.Fatalf("oversize: %d records and %d blob files left", records, blobs)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// problemOf sends req and returns the status and problem code.
func problemOf(t *testing.T, hc *http.Client, req *http.Request) (int, string) {
	t.Helper()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p struct {
		Code string `json:"code"`
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	json.Unmarshal(data, &p)
	return resp.StatusCode, p.Code
}

// lifecycleToken is a client of p with a token of scopes only.
func lifecycleToken(t *testing.T, p *Platform, admin *httpapi.Client, scopes ...string) *httpapi.Client {
	t.Helper()
	e := &lifecycleEnv{p: p, admin: admin}
	return e.tokenClient(t, scopes...)
}

// TestFirmwareUploadIdempotent: the first upload is 201 and stored once
// by content hash; the same bytes again are 200 with the same record;
// each upload is audited with digest, version and counter.
func TestFirmwareUploadIdempotent(t *testing.T) {
	t.Parallel()
	e := newFirmwareEnv(t)
	ctx := context.Background()
	data := e.image(t, firmware.TypeApplication, e.class.Public(), e.ec, e.pq)
	digest := sha256.Sum256(data)
	writer := lifecycleToken(t, e.p, e.admin, "firmware:write")
	statuses := []int{}
	var first httpapi.FirmwareImage
	for range 2 {
		status, img := rawUpload(t, e, writer, data)
		statuses = append(statuses, status)
		if first.Digest == "" {
			first = img
		} else if fmt.Sprint(img) != fmt.Sprint(first) {
			t.Fatalf("second upload answered %+v, first %+v", img, first)
		}
	}
	if statuses[0] != 201 || statuses[1] != 200 {
		t.Fatalf("upload statuses %v, want [201 200]", statuses)
	}
	if first.Digest != hex.EncodeToString(digest[:]) || first.Version != "1.2.3" || first.SecurityCounter != 5 ||
		!first.Encrypted || first.Type != "app" || first.Size != int64(len(data)) || len(first.Signers) != 2 ||
		first.Signers[0] != rootHex(t, e.ec) || first.Path != ota.PathFirmware+first.Digest {
		t.Fatalf("record %+v", first)
	}
	blob, err := os.ReadFile(firmwarerepo.BlobDir(e.dir) + "/" + first.Digest)
	if err != nil || !bytes.Equal(blob, data) {
		t.Fatalf("blob file: %v, equal %v", err, bytes.Equal(blob, data))
	}
	if records, blobs := e.stored(t); records != 1 || blobs != 1 {
		t.Fatalf("%d records and %d blob files, want 1 and 1", records, blobs)
	}
	// A reader lists and gets it; the writer alone may not.
	reader := lifecycleToken(t, e.p, e.admin, "firmware:read")
	page, err := reader.ListFirmware(ctx, httpapi.FirmwareQuery{Product: "meter"})
	if err != nil || len(page.Images) != 1 || page.Images[0].Digest != first.Digest {
		t.Fatalf("list: %+v, %v", page, err)
	}
	if got, err := reader.GetFirmware(ctx, first.Digest); err != nil || got.Digest != first.Digest {
		t.Fatalf("get: %+v, %v", got, err)
	}
	if _, err := writer.ListFirmware(ctx, httpapi.FirmwareQuery{}); !isProblem(err, "forbidden") {
		t.Fatalf("list by a firmware:write token: %v, want forbidden", err)
	}
	if _, err := reader.GetFirmware(ctx, strings.Repeat("ab", 32)); !isProblem(err, "not-found") {
		t.Fatalf("get of an unknown digest: %v", err)
	}
	uploads := 0
	for _, ev := range auditEvents(t, e.admin) {
		if ev.Action == firmwarerepo.ActionUpload && ev.Outcome == "ok" {
			uploads++
			want := "digest=" + first.Digest + " version=1.2.3 counter=5"
			if !strings.HasPrefix(ev.Detail, want) || ev.Subject != "product:meter" || !strings.HasPrefix(ev.Actor, "token:") {
				t.Errorf("audit event %+v, want detail %q", ev, want)
			}
		}
	}
	if uploads != 2 {
		t.Fatalf("%d upload audit events, want 2", uploads)
	}
}

// rawUpload uploads data with c's token and returns the status and record.
func rawUpload(t *testing.T, e *firmwareEnv, c *httpapi.Client, data []byte) (int, httpapi.FirmwareImage) {
	t.Helper()
	req, err := http.NewRequest("POST", e.p.URL()+"/v1/admin/products/meter/firmware", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := tlsClient(e.p, nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var img httpapi.FirmwareImage
	if err := json.NewDecoder(resp.Body).Decode(&img); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, img
}

// TestFirmwareDeviceDownload: an onboarded device of the product gets
// the whole image, then the same bytes in two ranges; another product's
// image and an unknown digest are the same not-found; a client without a
// device certificate, and a suspended device, are refused.
func TestFirmwareDeviceDownload(t *testing.T) {
	t.Parallel()
	e := newFirmwareEnv(t)
	ctx := context.Background()
	data := e.image(t, firmware.TypeApplication, e.class.Public(), e.ec, e.pq)
	img, err := e.admin.UploadFirmware(ctx, "meter", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	// The same roots for another product, and an image of its own.
	if _, err := e.admin.CreateProduct(ctx, httpapi.ProductRequest{ID: "other", Name: "Other", CertValidity: "720h",
		CloudEndpoint: "mqtts://broker.test:8883", FirmwareRoots: []string{rootHex(t, e.ec), rootHex(t, e.pq)}}); err != nil {
		t.Fatal(err)
	}
	foreign, err := e.admin.UploadFirmware(ctx, "other", bytes.NewReader(e.image(t, firmware.TypeApplication, nil, e.pq, e.ec)))
	if err != nil {
		t.Fatal(err)
	}
	_, cert, err := onboard(t, e.p, e.f.devices[0], e.f.ids[0])
	if err != nil {
		t.Fatal(err)
	}
	dev := tlsClient(e.p, cert)

	whole, status, hdr := download(t, e, dev, img.Digest, nil)
	if status != 200 || !bytes.Equal(whole, data) {
		t.Fatalf("whole download: %d, %d bytes, equal %v", status, len(whole), bytes.Equal(whole, data))
	}
	etag := hdr.Get("ETag")
	if etag != `"`+img.Digest+`"` {
		t.Fatalf("ETag %q", etag)
	}
	half := len(data) / 2
	first, status, _ := download(t, e, dev, img.Digest, http.Header{"Range": {fmt.Sprintf("bytes=0-%d", half-1)}})
	if status != 206 || len(first) != half {
		t.Fatalf("first half: %d, %d bytes", status, len(first))
	}
	second, status, hdr := download(t, e, dev, img.Digest, http.Header{"Range": {fmt.Sprintf("bytes=%d-", half)}, "If-Range": {etag}})
	if status != 206 || hdr.Get("Content-Range") != fmt.Sprintf("bytes %d-%d/%d", half, len(data)-1, len(data)) {
		t.Fatalf("second half: %d, Content-Range %q", status, hdr.Get("Content-Range"))
	}
	if !bytes.Equal(append(first, second...), data) {
		t.Fatal("the two ranges do not make the image")
	}
	// A stale If-Range gets the whole image, not a range of other bytes.
	if body, status, _ := download(t, e, dev, img.Digest, http.Header{"Range": {"bytes=10-"}, "If-Range": {`"` + foreign.Digest + `"`}}); status != 200 || !bytes.Equal(body, data) {
		t.Fatalf("stale If-Range: %d, %d bytes", status, len(body))
	}

	// No oracle: another product's image and an unknown digest answer alike.
	var answers []string
	for _, d := range []string{foreign.Digest, strings.Repeat("0", 64), "not-a-digest"} {
		body, status, _ := download(t, e, dev, d, nil)
		answers = append(answers, fmt.Sprintf("%d %s", status, problemDetail(body)))
	}
	if answers[0] != answers[1] || answers[0] != answers[2] || !strings.HasPrefix(answers[0], "404 not-found") {
		t.Fatalf("answers to a foreign, an unknown and a malformed digest: %q", answers)
	}
	if _, status, _ := download(t, e, tlsClient(e.p, nil), img.Digest, nil); status != 401 {
		t.Fatalf("download without a device certificate: %d, want 401", status)
	}
	served := metricValue(t, e, "hallmark_firmware_served_bytes_total")
	if want := 3*len(data) - 10; served < float64(want) {
		t.Fatalf("served bytes counter %v, want at least %d", served, want)
	}

	if _, err := e.admin.TransitionDevice(ctx, e.f.ids[0], "suspend", "stolen"); err != nil {
		t.Fatal(err)
	}
	body, status, _ := download(t, e, dev, img.Digest, nil)
	if status != 403 || !strings.HasPrefix(problemDetail(body), "device-suspended") {
		t.Fatalf("suspended device: %d %s", status, problemDetail(body))
	}
}

// download GETs the image of digest with hc and extra headers.
func download(t *testing.T, e *firmwareEnv, hc *http.Client, digest string, h http.Header) ([]byte, int, http.Header) {
	t.Helper()
	req, err := http.NewRequest("GET", e.p.URL()+ota.PathFirmware+digest, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return body, resp.StatusCode, resp.Header
}

// problemDetail is a problem body's code and detail.
func problemDetail(body []byte) string {
	var p struct{ Code, Detail string }
	if json.Unmarshal(body, &p) != nil {
		return "(not a problem)"
	}
	return p.Code + " " + p.Detail
}

var metricLine = regexp.MustCompile(`(?m)^([a-z_]+) ([0-9.e+]+)$`)

// metricValue scrapes the platform's /metrics for one unlabelled metric.
func metricValue(t *testing.T, e *firmwareEnv, name string) float64 {
	t.Helper()
	resp, err := tlsClient(e.p, nil).Get(e.p.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	for _, m := range metricLine.FindAllStringSubmatch(string(text), -1) {
		if m[1] == name {
			v, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestFirmwareAcrossReplicas: two replicas share the data directory and
// one PostgreSQL; an image uploaded at one is served whole by the other
// to a device onboarded at the first.
func TestFirmwareAcrossReplicas(t *testing.T) {
	t.Parallel()
	database := pgtest.NewDatabase(t)
	dir := t.TempDir()
	seedCAKeys(t, dir)
	var replicas []*Platform
	for range 2 {
		p, err := Start(context.Background(), Config{DataDir: dir, Database: database, Listen: "127.0.0.1:0",
			ServerName: "localhost", CASuite: sigalg.ECDSAP256})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		replicas = append(replicas, p)
	}
	e := &firmwareEnv{p: replicas[0], dir: dir, f: newFleet(t, sigalg.ECDSAP256)}
	e.admin = adminClient(t, e.p)
	e.f.register(t, e.admin)
	e.ec, e.pq = firmwareKey(t, sigalg.ECDSAP256), firmwareKey(t, sigalg.MLDSA65)
	e.payload = []byte("replicated application")
	roots := []string{rootHex(t, e.ec), rootHex(t, e.pq)}
	if _, err := e.admin.UpdateProduct(context.Background(), "meter", httpapi.ProductUpdateRequest{FirmwareRoots: &roots}); err != nil {
		t.Fatal(err)
	}
	data := e.image(t, firmware.TypeApplication, nil, e.ec, e.pq)
	img, err := e.admin.UploadFirmware(context.Background(), "meter", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	_, cert, err := onboard(t, e.p, e.f.devices[0], e.f.ids[0])
	if err != nil {
		t.Fatal(err)
	}
	other := &firmwareEnv{p: replicas[1]}
	body, status, _ := download(t, other, tlsClient(replicas[1], cert), img.Digest, nil)
	if status != 200 || !bytes.Equal(body, data) {
		t.Fatalf("download from the other replica: %d, equal %v", status, bytes.Equal(body, data))
	}
}
