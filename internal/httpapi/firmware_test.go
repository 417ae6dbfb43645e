package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/firmwarerepo"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/ota"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// firmwareEnv is the test server with the real repository mounted on its
// store and a blob directory, and a product whose one root is vendor's.
func firmwareEnv(t *testing.T) (*env, *firmwarerepo.Blobs, []byte) {
	t.Helper()
	e := newEnv(t)
	blobs, err := firmwarerepo.OpenBlobs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	repo, err := firmwarerepo.New(firmwarerepo.Config{Store: e.store, Blobs: blobs, Audit: e.store, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.HandleFirmware(repo, nil); err != nil {
		t.Fatal(err)
	}
	suite, _ := sigalg.Ed25519.Suite()
	vendor, err := suite.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := identity.FromPublicKey(vendor.Public())
	e.call(t, "POST", "/v1/admin/products", e.admin, ProductRequest{ID: "lamp", Name: "Lamp", CertValidity: "720h",
		CloudEndpoint: "mqtts://b.example.com", FirmwareRoots: []string{root.String()}}).decode(t, 201, &Product{})
	img, _ := firmware.New(firmware.Metadata{Type: firmware.TypeApplication, Version: firmware.Version{Major: 2}}, []byte("lamp firmware"))
	if err := img.Sign(vendor); err != nil {
		t.Fatal(err)
	}
	data, _ := img.MarshalBinary()
	return e, blobs, data
}

// TestFirmwareRoutesDocumented: the repository's routes are in the
// OpenAPI document and in docs/api.md, and mounting them twice fails
// rather than registering the counter twice.
func TestFirmwareRoutesDocumented(t *testing.T) {
	e, _, _ := firmwareEnv(t)
	checkOpenAPISync(t, e.srv)
	api, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"POST /v1/admin/products/{id}/firmware", "GET " + PathAdminFirmware, "GET " + PathAdminFirmware + "/{digest}",
		"GET " + ota.PathFirmware + "{digest}"} {
		if !strings.Contains(string(api), p) {
			t.Errorf("docs/api.md does not describe %s", p)
		}
	}
	if err := e.srv.HandleFirmware(nil, nil); err == nil {
		t.Fatal("HandleFirmware twice succeeded")
	}
}

// TestFirmwareAdminRoutes: the transport's checks (media type, a declared
// length over the limit, query values) come before the repository, and a
// good upload pages and reads back.
func TestFirmwareAdminRoutes(t *testing.T) {
	e, blobs, data := firmwareEnv(t)
	const upload = "/v1/admin/products/lamp/firmware"
	e.call(t, "POST", upload, e.admin, data, "application/json").wantProblem(t, 415, "unsupported-media-type")
	e.call(t, "POST", upload, e.token(t, "reader", "firmware:read"), data, "application/octet-stream").wantProblem(t, 403, "forbidden")

	req, _ := http.NewRequest("POST", e.ts.URL+upload, bytes.NewReader(data))
	req.ContentLength = firmware.MaxImageSize + 1 // a lie the server must not wait out
	req.Header.Set("Authorization", "Bearer "+e.admin)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Fatalf("declared oversize: %d, want 413", resp.StatusCode)
		}
	}

	var img FirmwareImage
	e.call(t, "POST", upload, e.admin, data, "application/octet-stream").decode(t, 201, &img)
	e.call(t, "POST", upload, e.admin, data, "application/octet-stream").decode(t, 200, &FirmwareImage{})
	d, _ := parseDigest(img.Digest)
	if !blobs.Has(d) || img.Version != "2.0.0" || img.Product != "lamp" {
		t.Fatalf("stored %v, record %+v", blobs.Has(d), img)
	}
	var page FirmwareList
	e.call(t, "GET", PathAdminFirmware+"?product=lamp&limit=1", e.admin, nil).decode(t, 200, &page)
	if len(page.Images) != 1 || page.Next != img.Digest {
		t.Fatalf("first page %+v", page)
	}
	after := page.Next
	page = FirmwareList{}
	e.call(t, "GET", PathAdminFirmware+"?after="+after, e.admin, nil).decode(t, 200, &page)
	if len(page.Images) != 0 || page.Next != "" {
		t.Fatalf("page after the last %+v", page)
	}
	e.call(t, "GET", PathAdminFirmware+"?after=xyz", e.admin, nil).wantProblem(t, 400, "malformed-request")
	e.call(t, "GET", PathAdminFirmware+"?product=Not%20A%20Slug", e.admin, nil).wantProblem(t, 400, "malformed-request")
	e.call(t, "GET", PathAdminFirmware+"/"+img.Digest, e.admin, nil).decode(t, 200, &FirmwareImage{})
	e.call(t, "GET", PathAdminFirmware+"/nope", e.admin, nil).wantProblem(t, 404, "not-found")
	// Device route over plain HTTP: no certificate, not onboarded.
	e.call(t, "GET", ota.PathFirmware+img.Digest, "", nil).wantProblem(t, 401, "not-onboarded")
	if _, err := e.store.GetFirmwareImage(context.Background(), d); err != nil {
		t.Fatal(err)
	}
}

// TestTokenScopesDocumented: the OpenAPI enum of token scopes lists every
// scope a token may hold, the repository's included.
func TestTokenScopesDocumented(t *testing.T) {
	field, _ := reflect.TypeFor[TokenRequest]().FieldByName("Scopes")
	enum := strings.Split(field.Tag.Get("enum"), ",")
	for _, sc := range admin.Scopes() {
		if !slices.Contains(enum, sc) {
			t.Errorf("scope %q is missing from TokenRequest's enum", sc)
		}
	}
}
