package console

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// countRow is one row of a count table, with the devices page it links
// to ("" for none).
type countRow struct {
	Label string
	Count int
	Href  string
}

type overviewView struct {
	Sum                         store.FleetSummary
	States, Products            []countRow
	Classes, Suites, Jobs       []countRow
	Onboardings, Failures       barChart
	LastHour, LastDay, LastWeek int
	ExpiringWithin, SilentAfter string
	Refresh                     string
}

func (h *Handler) overview(w http.ResponseWriter, r *http.Request, s *admin.Session) {
	if _, err := readQuery(r); err != nil {
		h.renderError(w, r, s, http.StatusBadRequest, err.Error())
		return
	}
	sum, err := h.console.FleetSummary(r.Context(), s.Caller)
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	within, silence := h.console.SummaryWindows()
	v := overviewView{Sum: sum, Onboardings: onboardingChart(sum.Onboardings), Failures: failureChart(sum.Failures),
		ExpiringWithin: days(within), SilentAfter: days(silence), Refresh: h.console.SummaryTTL().String()}
	v.LastHour, v.LastDay, v.LastWeek = totals(sum.Onboardings)
	for _, st := range store.DeviceStates {
		v.States = append(v.States, countRow{string(st), sum.ByState[st], "/console/devices?state=" + string(st)})
	}
	v.Products = sortedRows(sum.ByProduct, func(k string) string { return "/console/devices?product=" + k })
	v.Classes = sortedRows(sum.ByClass, func(k string) string { return "/console/devices?class=" + k })
	suites := map[string]int{}
	for k, n := range sum.BySuite {
		suites[string(k)] = n
	}
	v.Suites = sortedRows(suites, func(k string) string { return "/console/devices?suite=" + k })
	for _, js := range []store.JobState{store.JobPending, store.JobRunning, store.JobFailed} {
		row := countRow{Label: string(js), Count: sum.Jobs[js]}
		if js != store.JobRunning {
			row.Href = "/console/devices?cloud=" + string(js)
		}
		v.Jobs = append(v.Jobs, row)
	}
	h.render(w, r, s, http.StatusOK, "overview", "Overview", v)
}

// sortedRows lists counts largest first, then by name.
func sortedRows(m map[string]int, href func(string) string) []countRow {
	var out []countRow
	for k, n := range m {
		out = append(out, countRow{k, n, href(k)})
	}
	slices.SortFunc(out, func(a, b countRow) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Label, b.Label))
	})
	return out
}

// days says a duration in days when it is whole days.
func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		n := int(d / (24 * time.Hour))
		if n == 1 {
			return "1 day"
		}
		return fmt.Sprintf("%d days", n)
	}
	return d.String()
}

// batchPageSize is how many batches a page shows.
const batchPageSize = 50

type batchesView struct {
	Batches []store.Batch
	Next    string
}

func (h *Handler) batches(w http.ResponseWriter, r *http.Request, s *admin.Session) {
	q, err := readQuery(r, "after")
	if err != nil {
		h.renderError(w, r, s, http.StatusBadRequest, err.Error())
		return
	}
	after := q.Get("after")
	if len(after) > 256 {
		h.renderError(w, r, s, http.StatusBadRequest, "after is longer than a batch name")
		return
	}
	list, err := h.console.ListBatches(r.Context(), s.Caller, store.BatchFilter{After: after, Limit: batchPageSize + 1})
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	v := batchesView{Batches: list}
	if len(list) > batchPageSize {
		v.Batches = list[:batchPageSize]
		v.Next = "/console/batches?after=" + queryEscape(v.Batches[batchPageSize-1].ID)
	}
	h.render(w, r, s, http.StatusOK, "batches", "Batches", v)
}

type stationsView struct {
	Stations []store.Station
	Created  *store.Station
	Form     form
	Error    string
}

func (h *Handler) stations(w http.ResponseWriter, r *http.Request, s *admin.Session) {
	h.stationsPage(w, r, s, http.StatusOK, stationsView{})
}

func (h *Handler) stationsPage(w http.ResponseWriter, r *http.Request, s *admin.Session, status int, v stationsView) {
	if _, err := readQuery(r); err != nil {
		h.renderError(w, r, s, http.StatusBadRequest, err.Error())
		return
	}
	// Listing stations needs stations:write, as GET /v1/admin/stations does.
	if err := h.console.Authorize(r.Context(), s.Caller, admin.ActionStationList, "", admin.ScopeStationsWrite); err != nil {
		h.fail(w, r, s, err)
		return
	}
	list, err := h.admin.Registry.ListStations(r.Context(), s.Caller)
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	v.Stations = list
	h.render(w, r, s, status, "stations", "Stations", v)
}

func (h *Handler) createStation(w http.ResponseWriter, r *http.Request, s *admin.Session, f form) {
	if err := h.console.Authorize(r.Context(), s.Caller, admin.ActionStationCreate, "", admin.ScopeStationsWrite); err != nil {
		h.fail(w, r, s, err)
		return
	}
	st, err := h.admin.Registry.CreateStation(r.Context(), s.Caller, admin.StationRequest{Name: f.Get("name"), PublicKey: f.Get("public_key")})
	if err != nil {
		e := admin.Classify(err)
		if statusOf(e.Code) == http.StatusInternalServerError {
			h.fail(w, r, s, err)
			return
		}
		h.stationsPage(w, r, s, statusOf(e.Code), stationsView{Form: f, Error: messageOf(e)})
		return
	}
	h.stationsPage(w, r, s, http.StatusOK, stationsView{Created: &st})
}

type productsView struct {
	Products []store.Product
	Created  *store.Product
	Form     form
	Error    string
}

func (h *Handler) products(w http.ResponseWriter, r *http.Request, s *admin.Session) {
	h.productsPage(w, r, s, http.StatusOK, productsView{})
}

func (h *Handler) productsPage(w http.ResponseWriter, r *http.Request, s *admin.Session, status int, v productsView) {
	if _, err := readQuery(r); err != nil {
		h.renderError(w, r, s, http.StatusBadRequest, err.Error())
		return
	}
	// Listing products needs products:write, as GET /v1/admin/products does.
	if err := h.console.Authorize(r.Context(), s.Caller, admin.ActionProductList, "", admin.ScopeProductsWrite); err != nil {
		h.fail(w, r, s, err)
		return
	}
	list, err := h.admin.Registry.ListProducts(r.Context(), s.Caller)
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	v.Products = list
	h.render(w, r, s, status, "products", "Products", v)
}

func (h *Handler) createProduct(w http.ResponseWriter, r *http.Request, s *admin.Session, f form) {
	if err := h.console.Authorize(r.Context(), s.Caller, admin.ActionProductCreate, "", admin.ScopeProductsWrite); err != nil {
		h.fail(w, r, s, err)
		return
	}
	p, err := h.admin.Registry.CreateProduct(r.Context(), s.Caller, admin.ProductRequest{ID: f.Get("id"), Name: f.Get("name"),
		CertValidity: f.Get("cert_validity"), CloudEndpoint: f.Get("cloud_endpoint")})
	if err != nil {
		e := admin.Classify(err)
		if statusOf(e.Code) == http.StatusInternalServerError {
			h.fail(w, r, s, err)
			return
		}
		h.productsPage(w, r, s, statusOf(e.Code), productsView{Form: f, Error: messageOf(e)})
		return
	}
	h.productsPage(w, r, s, http.StatusOK, productsView{Created: &p})
}

type tokensView struct {
	Tokens    []store.Token
	Scopes    []string
	Secret    string // a created token's, shown once
	CreatedID string
	Form      form
	Error     string
	Now       time.Time
}

func (h *Handler) tokens(w http.ResponseWriter, r *http.Request, s *admin.Session) {
	h.tokensPage(w, r, s, http.StatusOK, tokensView{})
}

func (h *Handler) tokensPage(w http.ResponseWriter, r *http.Request, s *admin.Session, status int, v tokensView) {
	if _, err := readQuery(r); err != nil {
		h.renderError(w, r, s, http.StatusBadRequest, err.Error())
		return
	}
	if err := h.console.Authorize(r.Context(), s.Caller, admin.ActionTokenList, "", admin.ScopeTokensWrite); err != nil {
		h.fail(w, r, s, err)
		return
	}
	list, err := h.admin.Tokens.List(r.Context(), s.Caller)
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	v.Tokens, v.Scopes, v.Now = list, admin.Scopes(), h.console.Now()
	h.render(w, r, s, status, "tokens", "Tokens", v)
}

func (h *Handler) createToken(w http.ResponseWriter, r *http.Request, s *admin.Session, f form) {
	if err := h.console.Authorize(r.Context(), s.Caller, admin.ActionTokenCreate, "", admin.ScopeTokensWrite); err != nil {
		h.fail(w, r, s, err)
		return
	}
	secret, tok, err := h.admin.Tokens.Create(r.Context(), s.Caller, admin.TokenRequest{Name: f.Get("name"), Scopes: f.all("scope"), TTL: strings.TrimSpace(f.Get("ttl"))})
	if err != nil {
		e := admin.Classify(err)
		if statusOf(e.Code) == http.StatusInternalServerError {
			h.fail(w, r, s, err)
			return
		}
		h.tokensPage(w, r, s, statusOf(e.Code), tokensView{Form: f, Error: messageOf(e)})
		return
	}
	h.tokensPage(w, r, s, http.StatusOK, tokensView{Secret: secret, CreatedID: tok.ID})
}

func (h *Handler) revokeToken(w http.ResponseWriter, r *http.Request, s *admin.Session, _ form) {
	id := r.PathValue("id")
	if err := h.console.Authorize(r.Context(), s.Caller, admin.ActionTokenRevoke, "token:"+shorten(id, 40), admin.ScopeTokensWrite); err != nil {
		h.fail(w, r, s, err)
		return
	}
	if _, err := h.admin.Tokens.Revoke(r.Context(), s.Caller, id); err != nil {
		h.fail(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/console/tokens", http.StatusSeeOther)
}

// messageOf is what to tell the operator of a refusal.
func messageOf(e *admin.Error) string {
	if e.Message != "" {
		return e.Message
	}
	return e.Code
}

// auditPageSize is how many audit events a page shows.
const auditPageSize = 100

type auditView struct {
	Events []store.AuditEvent
	Form   form
	Next   string
}

func (h *Handler) auditLog(w http.ResponseWriter, r *http.Request, s *admin.Session) {
	q, err := readQuery(r, "actor", "action", "subject", "before")
	if err != nil {
		h.renderError(w, r, s, http.StatusBadRequest, err.Error())
		return
	}
	before, err := afterSeq(q.Get("before"))
	if err != nil {
		h.renderError(w, r, s, http.StatusBadRequest, err.Error())
		return
	}
	if err := h.console.Authorize(r.Context(), s.Caller, admin.ActionAuditList, "", admin.ScopeAuditRead); err != nil {
		h.fail(w, r, s, err)
		return
	}
	list, err := h.admin.Audit.List(r.Context(), s.Caller, store.AuditFilter{Actor: q.Get("actor"), Action: q.Get("action"),
		Subject: q.Get("subject"), Newest: true, BeforeSeq: before, Limit: auditPageSize + 1})
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	v := auditView{Events: list, Form: q}
	if len(list) > auditPageSize {
		v.Events = list[:auditPageSize]
		next := q.clone()
		next["before"] = []string{fmt.Sprint(v.Events[auditPageSize-1].Seq)}
		v.Next = "/console/audit?" + next.encode()
	}
	h.render(w, r, s, http.StatusOK, "audit", "Audit", v)
}

// eventPageSize is how many events a page, or a poll of the live view,
// returns.
const eventPageSize = 100

type eventsView struct {
	// Events are one page, oldest first: the newest page, or the one
	// before Before.
	Events []store.DeviceEvent
	Before int64
	// Older links to the page before this one, if there is one.
	Older string
	// Last is the last seq shown: the live view, on the newest page
	// only, polls after it.
	Last int64
}

func (h *Handler) events(w http.ResponseWriter, r *http.Request, s *admin.Session) {
	q, err := readQuery(r, "before")
	if err != nil {
		h.renderError(w, r, s, http.StatusBadRequest, err.Error())
		return
	}
	before, err := afterSeq(q.Get("before"))
	if err != nil {
		h.renderError(w, r, s, http.StatusBadRequest, err.Error())
		return
	}
	// The newest page first (an operator opens the page to see what is
	// happening now), shown oldest first so that the live view appends.
	list, err := h.console.ListEvents(r.Context(), s.Caller, store.EventFilter{Newest: true, BeforeSeq: before, Limit: eventPageSize + 1})
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	v := eventsView{Events: list, Before: before}
	if len(list) > eventPageSize {
		v.Events = list[:eventPageSize]
		v.Older = fmt.Sprintf("/console/events?before=%d", v.Events[eventPageSize-1].Seq)
	}
	slices.Reverse(v.Events)
	if n := len(v.Events); n > 0 {
		v.Last = v.Events[n-1].Seq
	}
	h.render(w, r, s, http.StatusOK, "events", "Events", v, "events.js")
}

// FeedEvent is one event of the live view's feed.
type FeedEvent struct {
	Seq      int64     `json:"seq"`
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"`
	Identity string    `json:"identity"`
	Serial   string    `json:"serial,omitempty"`
	Detail   string    `json:"detail,omitempty"`
}

// Feed is one poll of the live view: the events after the seq asked,
// oldest first, and the seq to poll after next.
type Feed struct {
	Events []FeedEvent `json:"events"`
	Next   int64       `json:"next"`
}

// eventFeed answers the live view's poll with JSON, to this console's
// own pages only: a session cookie (SameSite=Strict) and, when the
// browser says where the request comes from, this origin.
func (h *Handler) eventFeed(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		fail(http.StatusForbidden, "the feed serves this console's pages only")
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" && origin != "https://"+r.Host {
		fail(http.StatusForbidden, "the feed serves this console's pages only")
		return
	}
	s, ok, err := h.session(r)
	switch {
	case err != nil:
		h.log.Error("console: feed session", "err", err)
		fail(http.StatusInternalServerError, "internal error")
		return
	case !ok:
		fail(http.StatusUnauthorized, "sign in again")
		return
	}
	q, err := readQuery(r, "after")
	if err != nil {
		fail(http.StatusBadRequest, err.Error())
		return
	}
	after, err := afterSeq(q.Get("after"))
	if err != nil {
		fail(http.StatusBadRequest, err.Error())
		return
	}
	list, err := h.console.FollowEvents(r.Context(), s.Caller, store.EventFilter{AfterSeq: after, Limit: eventPageSize})
	if err != nil {
		e := admin.Classify(err)
		if e.Code == admin.CodeInternal {
			h.log.Error("console: feed", "err", err)
		}
		fail(statusOf(e.Code), messageOf(e))
		return
	}
	out := Feed{Events: make([]FeedEvent, 0, len(list)), Next: after}
	for _, e := range list {
		fe := FeedEvent{Seq: e.Seq, Time: e.Time, Kind: string(e.Kind), Identity: e.Identity.String(), Detail: e.Detail}
		if e.Serial != ([16]byte{}) {
			fe.Serial = hexString(e.Serial)
		}
		out.Events = append(out.Events, fe)
		out.Next = e.Seq
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}
