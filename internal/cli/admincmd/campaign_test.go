package admincmd_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/campaign"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
	"github.com/hallmark-iot/hallmark/internal/store/sqlite"
)

// campaignEnv is adminEnv's server with the campaign routes, and a
// product with n onboarded devices and an image record in its store.
func newCampaignCLIEnv(t *testing.T, n int) (*adminEnv, []identity.ID, string) {
	t.Helper()
	e := newAdminEnv(t)
	ctx := context.Background()
	st := e.store.(*sqlite.Store)
	now := time.Now().UTC()
	station := store.Station{ID: identity.FromSPKI([]byte("st")), Name: "s", Algorithm: sigalg.Ed25519, PublicKey: []byte("st"), CreatedAt: now}
	if err := st.CreateStation(ctx, station); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateProduct(ctx, store.Product{ID: "meter", Name: "Meter", CertValidity: time.Hour, CloudEndpoint: "mqtts://x", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	var ids []identity.ID
	devices := make([]store.Device, n)
	for i := range devices {
		pub := []byte("cli-device:" + strconv.Itoa(i))
		devices[i] = store.Device{Identity: identity.FromSPKI(pub), Algorithm: sigalg.ECDSAP256, PublicKey: pub, RootOfTrust: "keygen", Injection: "none"}
		ids = append(ids, devices[i].Identity)
	}
	if _, err := st.ImportBatch(ctx, store.Batch{ID: "b1", StationID: station.ID, ProductID: "meter", ImportedAt: now}, devices); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		var serial [16]byte
		binary.BigEndian.PutUint64(serial[8:], uint64(i+1))
		if err := st.RecordOnboarding(ctx, store.Certificate{Serial: serial, Identity: id, NotBefore: now, NotAfter: now.Add(time.Hour), DER: []byte{1}, IssuedAt: now}, now); err != nil {
			t.Fatal(err)
		}
	}
	digest := sha256.Sum256([]byte("cli image"))
	if _, _, err := st.PutFirmwareImage(ctx, store.FirmwareImage{Digest: digest, ProductID: "meter", Type: "app", Version: "3.1.0", Size: 1, UploadedAt: now, UploadedBy: "token:x"}); err != nil {
		t.Fatal(err)
	}
	svc, err := campaign.New(campaign.Config{Store: st, Images: st, Devices: noDevices{}})
	if err != nil {
		t.Fatal(err)
	}
	srv := e.ts.Config.Handler.(*httpapi.Server)
	if err := srv.HandleCampaigns(svc, nil); err != nil {
		t.Fatal(err)
	}
	return e, ids, hex.EncodeToString(digest[:])
}

// noDevices refuses every device: these tests use the admin routes only.
type noDevices struct{ campaign.Authenticator }

func TestAdminCampaignCommands(t *testing.T) {
	e, ids, image := newCampaignCLIEnv(t, 3)
	list := filepath.Join(e.dir, "devices.txt")
	os.WriteFile(list, []byte("# the canaries\n"+ids[0].String()+"\n"+ids[1].String()+"\n"), 0o600)

	out := e.mustAdmin(t, "campaign", "create", "--product", "meter", "--image", image, "--devices", list, "--waves", "1,100%", "--halt-at", "0.5", "--json")
	var c httpapi.Campaign
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatal(err)
	}
	if c.DeviceCount != 2 || len(c.Waves) != 2 || c.HaltAt != 0.5 || c.State != "running" {
		t.Fatalf("created %+v", c)
	}
	if out := e.mustAdmin(t, "campaign", "list"); !strings.Contains(out, c.ID) || !strings.Contains(out, "running") {
		t.Errorf("list: %q", out)
	}
	status := e.mustAdmin(t, "campaign", "status", c.ID)
	for _, want := range []string{"campaign " + c.ID + "  running  wave 1 of 2  2 devices", "all: pending 2", "wave 1: 1 devices, 0 finished, 0 failed open: pending 1", "wave 2: 1 devices"} {
		if !strings.Contains(status, want) {
			t.Errorf("status lacks %q:\n%s", want, status)
		}
	}
	if out := e.mustAdmin(t, "campaign", "devices", c.ID, "--state", "pending"); strings.Count(out, "pending") != 2 {
		t.Errorf("devices: %q", out)
	}
	if out := e.mustAdmin(t, "campaign", "pause", c.ID, "--reason", "hold on"); out != "campaign "+c.ID+": paused\n" {
		t.Errorf("pause: %q", out)
	}
	if out := e.mustAdmin(t, "campaign", "status", c.ID); !strings.Contains(out, "reason: hold on") {
		t.Errorf("status of a paused campaign: %q", out)
	}
	e.mustAdmin(t, "campaign", "resume", c.ID, "--reason", "go")
	e.mustAdmin(t, "campaign", "cancel", c.ID, "--reason", "stop")
	if out := e.mustAdmin(t, "campaign", "status", c.ID, "--watch"); !strings.Contains(out, "cancelled") {
		t.Errorf("--watch of a cancelled campaign does not end at once: %q", out)
	}

	// Refusals: the server's, on one line; usage errors before any call.
	code, _, errOut := e.admin(t, nil, "campaign", "resume", c.ID, "--reason", "again")
	wantProblemLine(t, code, errOut, "conflict")
	code, _, errOut = e.admin(t, nil, "campaign", "status", "cmp_0000000000000000")
	wantProblemLine(t, code, errOut, "not-found")
	code, _, errOut = e.admin(t, nil, "campaign", "create", "--product", "meter", "--image", image, "--waves", "50%")
	wantProblemLine(t, code, errOut, "malformed-request")
	for _, args := range [][]string{
		{"campaign", "pause", c.ID},
		{"campaign", "create", "--image", image},
		{"campaign", "create", "--product", "meter", "--image", image, "--devices", filepath.Join(e.dir, "missing")},
	} {
		if code, _, _ := e.admin(t, nil, args...); code == 0 {
			t.Errorf("hallmark admin %s succeeded", strings.Join(args, " "))
		}
	}
	os.WriteFile(list, []byte(ids[0].String()+"\nnot-an-identity\n"), 0o600)
	if code, _, errOut := e.admin(t, nil, "campaign", "create", "--product", "meter", "--image", image, "--devices", list); code != 2 || !strings.Contains(errOut, "line 2") {
		t.Errorf("a bad device list: exit %d, %q", code, errOut)
	}
}
