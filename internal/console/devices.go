package console

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

type devicesView struct {
	Devices []admin.DeviceStatus
	Form    form
	Next    string
	// The filter's choices.
	States, Products, Batches, Classes, Suites, Clouds []string
}

func (h *Handler) devices(w http.ResponseWriter, r *http.Request, s *admin.Session) {
	q, err := readQuery(r, deviceQuery...)
	if err != nil {
		h.renderError(w, r, s, http.StatusBadRequest, err.Error())
		return
	}
	f, err := deviceFilter(q)
	if err != nil {
		h.renderError(w, r, s, http.StatusBadRequest, err.Error())
		return
	}
	if err := h.console.Authorize(r.Context(), s.Caller, admin.ActionDeviceList, "", admin.ScopeDevicesRead); err != nil {
		h.fail(w, r, s, err)
		return
	}
	list, err := h.admin.Devices.List(r.Context(), s.Caller, f)
	if errors.Is(err, store.ErrBadFilter) {
		h.renderError(w, r, s, http.StatusBadRequest, "The filter is not valid.")
		return
	}
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	v := devicesView{Devices: list, Form: q, Classes: rootsOfTrust, Suites: sigalg.Names(), Clouds: cloudFilters}
	for _, st := range store.DeviceStates {
		v.States = append(v.States, string(st))
	}
	if len(list) > devicePageSize {
		v.Devices = list[:devicePageSize]
		next := q.clone()
		next["after"] = []string{v.Devices[devicePageSize-1].Identity.String()}
		v.Next = "/console/devices?" + next.encode()
	}
	// The products and recent batches for the selects, from the summary
	// (cached) and the batches' first page: the devices page never lists
	// what could be millions.
	if sum, err := h.console.FleetSummary(r.Context(), s.Caller); err == nil {
		for p := range sum.ByProduct {
			v.Products = append(v.Products, p)
		}
	}
	if batches, err := h.console.ListBatches(r.Context(), s.Caller, store.BatchFilter{Limit: batchPageSize}); err == nil {
		for _, b := range batches {
			v.Batches = append(v.Batches, b.ID)
		}
	}
	v.Products = withChoice(v.Products, f.ProductID)
	v.Batches = withChoice(v.Batches, f.BatchID)
	h.render(w, r, s, http.StatusOK, "devices", "Devices", v)
}

// withChoice sorts choices and adds the one selected if it is missing,
// so that the select shows what the page filters by.
func withChoice(choices []string, selected string) []string {
	if selected != "" && !slices.Contains(choices, selected) {
		choices = append(choices, selected)
	}
	slices.Sort(choices)
	return choices
}

// deviceAction is one of the device page's forms.
type deviceAction struct {
	Name, Label string
	transition  store.Transition
	scope       string
}

var deviceActions = []deviceAction{
	{"suspend", "Suspend", store.TransitionSuspend, admin.ScopeDevicesSuspend},
	{"resume", "Resume", store.TransitionResume, admin.ScopeDevicesSuspend},
	{"revoke", "Revoke", store.TransitionRevoke, admin.ScopeDevicesRevoke},
	{"decommission", "Decommission", store.TransitionDecommission, admin.ScopeDevicesRevoke},
}

type certRow struct {
	store.Certificate
	Status string
}

type deviceView struct {
	Device    admin.DeviceStatus
	ID        string
	Certs     []certRow
	Detail    admin.DeviceDetail
	Audit     []store.AuditEvent
	CanAudit  bool
	Actions   []deviceAction
	Locks     string
	Algorithm string
}

// deviceAuditLimit bounds the device's audit trail on its page.
const deviceAuditLimit = 100

func (h *Handler) device(w http.ResponseWriter, r *http.Request, s *admin.Session) {
	if _, err := readQuery(r); err != nil {
		h.renderError(w, r, s, http.StatusBadRequest, err.Error())
		return
	}
	id, err := admin.ParseIdentity(r.PathValue("identity"))
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	ctx := r.Context()
	if err := h.console.Authorize(ctx, s.Caller, admin.ActionDeviceGet, "device:"+id.String(), admin.ScopeDevicesRead); err != nil {
		h.fail(w, r, s, err)
		return
	}
	d, err := h.admin.Devices.Get(ctx, s.Caller, id)
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	detail, err := h.console.DeviceDetail(ctx, s.Caller, id)
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	v := deviceView{Device: d, ID: id.String(), Detail: detail, CanAudit: s.Caller.HasScope(admin.ScopeAuditRead)}
	for _, c := range d.Certificates {
		v.Certs = append(v.Certs, certRow{Certificate: c, Status: certStatus(c)})
	}
	if v.CanAudit {
		v.Audit, err = h.admin.Audit.List(ctx, s.Caller, store.AuditFilter{Subject: "device:" + id.String(), Limit: deviceAuditLimit})
		if err != nil {
			h.fail(w, r, s, err)
			return
		}
	}
	for _, a := range deviceActions {
		if s.Caller.HasScope(a.scope) && a.transition.Allowed(d.State) {
			v.Actions = append(v.Actions, a)
		}
	}
	h.render(w, r, s, http.StatusOK, "device", "Devices", v)
}

// certStatus says where a certificate is in its life.
func certStatus(c store.Certificate) string {
	switch {
	case !c.RevokedAt.IsZero() && c.RevocationReason == store.ReasonCertificateHold:
		return "on hold"
	case !c.RevokedAt.IsZero():
		return "revoked"
	case !c.SupersededAt.IsZero():
		return "superseded"
	}
	return "good"
}

type confirmView struct {
	Action deviceAction
	ID     string
	Reason string
}

// defaultReason is the reason of a transition whose form left it empty:
// the use case requires one, the contract makes the field optional.
const defaultReason = "from the web console"

// deviceAction asks for confirmation of a transition, or, confirmed,
// makes it. The scope is checked first: a token without it is refused
// (403, audited) whether or not the post says it is confirmed.
func (h *Handler) deviceAction(w http.ResponseWriter, r *http.Request, s *admin.Session, f form) {
	id, err := admin.ParseIdentity(r.PathValue("identity"))
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	i := slices.IndexFunc(deviceActions, func(a deviceAction) bool { return a.Name == r.PathValue("action") })
	if i < 0 {
		h.renderError(w, r, s, http.StatusNotFound, "There is no such device action.")
		return
	}
	a := deviceActions[i]
	ctx := r.Context()
	if err := h.console.Authorize(ctx, s.Caller, admin.TransitionAction(a.transition), "device:"+id.String(), a.scope); err != nil {
		h.fail(w, r, s, err)
		return
	}
	reason := strings.TrimSpace(f.Get("reason"))
	confirm, confirmed := f[("confirm")]
	if !confirmed {
		h.render(w, r, s, http.StatusOK, "confirm", "Devices", confirmView{Action: a, ID: id.String(), Reason: reason})
		return
	}
	if len(confirm) != 1 || confirm[0] != id.String() {
		h.renderError(w, r, s, http.StatusBadRequest, "The confirmation names another device, so nothing was done.")
		return
	}
	if reason == "" {
		reason = defaultReason
	}
	if _, err := h.admin.Devices.Transition(ctx, s.Caller, id, a.transition, admin.TransitionRequest{Reason: reason}); err != nil {
		h.fail(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/console/devices/"+id.String(), http.StatusSeeOther)
}

type manifestsView struct {
	Products []store.Product
	Product  string
	Result   *admin.ImportResult
	Errors   []string
}

func (h *Handler) manifests(w http.ResponseWriter, r *http.Request, s *admin.Session) {
	if _, err := readQuery(r); err != nil {
		h.renderError(w, r, s, http.StatusBadRequest, err.Error())
		return
	}
	h.manifestsPage(w, r, s, http.StatusOK, manifestsView{})
}

func (h *Handler) manifestsPage(w http.ResponseWriter, r *http.Request, s *admin.Session, status int, v manifestsView) {
	if err := h.console.Authorize(r.Context(), s.Caller, admin.ActionManifestImport, "", admin.ScopeManifestsImport); err != nil {
		h.fail(w, r, s, err)
		return
	}
	// The products to import into: a manifests:import token may name
	// them, so it may see their IDs and names.
	list, err := h.admin.Registry.ListProducts(r.Context(), s.Caller)
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	v.Products = list
	h.render(w, r, s, status, "manifests", "Manifests", v, "upload.js")
}

// upload imports a manifest posted as multipart/form-data, streamed: the
// csrf and product fields first (a browser sends a form's fields in its
// order), then the file, which is never held whole in memory here.
func (h *Handler) upload() http.Handler {
	return h.sameOrigin(func(w http.ResponseWriter, r *http.Request, s *admin.Session) {
		ctx := r.Context()
		if err := h.console.Authorize(ctx, s.Caller, admin.ActionManifestImport, "", admin.ScopeManifestsImport); err != nil {
			h.fail(w, r, s, err)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, h.maxManifest+maxFormBody)
		mr, err := multipartReader(r)
		if err != nil {
			h.manifestsPage(w, r, s, http.StatusBadRequest, manifestsView{Errors: []string{err.Error()}})
			return
		}
		fields, file, err := readUploadFields(mr)
		if err == nil && !csrfValid(s.Secret, fields.Get("csrf")) {
			h.renderError(w, r, s, http.StatusForbidden, "This form is not from this session (its csrf value is missing or wrong), so nothing was imported. Reload the page and try again.")
			return
		}
		if err != nil {
			h.manifestsPage(w, r, s, http.StatusBadRequest, manifestsView{Errors: []string{err.Error()}})
			return
		}
		product := fields.Get("product")
		res, err := h.admin.Manifests.Import(ctx, s.Caller, product, limitedUpload{file, h.maxManifest})
		if err != nil {
			e := admin.Classify(err)
			if statusOf(e.Code) == http.StatusInternalServerError {
				h.fail(w, r, s, err)
				return
			}
			h.manifestsPage(w, r, s, statusOf(e.Code), manifestsView{Product: product, Errors: importErrors(e)})
			return
		}
		h.manifestsPage(w, r, s, http.StatusOK, manifestsView{Product: product, Result: &res})
	})
}

// multipartReader checks the upload's content type.
func multipartReader(r *http.Request) (*multipart.Reader, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		return nil, errors.New("the upload must be a multipart/form-data form")
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, errors.New("the upload must be a multipart/form-data form")
	}
	return mr, nil
}

// importErrors lists what a refused import says, one line a record where
// the refusal names records.
func importErrors(e *admin.Error) []string {
	out := []string{messageOf(e)}
	var dup *admin.DuplicateDevicesError
	var open *admin.NotLockedDevicesError
	var ids []identity.ID
	what := ""
	switch {
	case errors.As(e, &dup):
		ids, what = dup.Identities, "is registered by another batch"
	case errors.As(e, &open):
		ids, what = open.Identities, "is not recorded locked by the station"
	}
	const shown = 100
	for i, id := range ids {
		if i == shown {
			out = append(out, fmt.Sprintf("… and %d more devices.", len(ids)-shown))
			break
		}
		out = append(out, fmt.Sprintf("Device %s %s.", id, what))
	}
	return out
}

// limitedUpload turns the body limit's error into the use case's
// body-too-large refusal.
type limitedUpload struct {
	r     io.Reader
	limit int64
}

func (l limitedUpload) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return n, admin.Errorf(admin.CodeBodyTooLarge, "the manifest is larger than %d bytes", l.limit)
	}
	return n, err
}
