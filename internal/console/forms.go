package console

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Input limits: a form's body, one field's value, and the fields a form
// or a query may have.
const (
	maxFormBody  = 64 << 10
	maxFieldSize = 16 << 10
	maxFields    = 64
)

// repeatable fields may be given more than once (checkboxes).
var repeatable = map[string]bool{"scope": true}

// form is a decoded form or query: each field once (bar the repeatable
// ones), valid UTF-8, within the size limits.
type form url.Values

// Get is the field's value, "" when absent.
func (f form) Get(name string) string {
	if v := f[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// clone copies f, to change a copy.
func (f form) clone() form {
	out := form{}
	for k, v := range f {
		out[k] = slices.Clone(v)
	}
	return out
}

// encode is f as a query string.
func (f form) encode() string { return url.Values(f).Encode() }

// queryEscape escapes a value for a link's query.
func queryEscape(v string) string { return url.QueryEscape(v) }

// all is every value of a repeatable field.
func (f form) all(name string) []string { return f[name] }

// errForm is a form or query the console cannot read; its message says
// why in words an operator can act on.
var errForm = errors.New("the form could not be read")

// parseForm decodes an application/x-www-form-urlencoded body or a
// query string, as the console accepts them.
func parseForm(raw string) (form, error) {
	if len(raw) > maxFormBody {
		return nil, fmt.Errorf("%w: it is larger than %d bytes", errForm, maxFormBody)
	}
	if strings.Count(raw, "&")+1 > maxFields {
		return nil, fmt.Errorf("%w: it has more than %d fields", errForm, maxFields)
	}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: it is not form encoding", errForm)
	}
	for name, vs := range vals {
		if len(vs) > 1 && !repeatable[name] {
			return nil, fmt.Errorf("%w: field %q is given %d times", errForm, shorten(name, 40), len(vs))
		}
		for _, v := range vs {
			if len(v) > maxFieldSize || !utf8.ValidString(v) {
				return nil, fmt.Errorf("%w: field %q is longer than %d bytes or not UTF-8", errForm, shorten(name, 40), maxFieldSize)
			}
		}
	}
	return form(vals), nil
}

// readForm reads a POST's url-encoded body, within maxFormBody.
func readForm(w http.ResponseWriter, r *http.Request) (form, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, fmt.Errorf("%w: want a form (application/x-www-form-urlencoded)", errForm)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBody+1))
	if err != nil {
		return nil, fmt.Errorf("%w: it is larger than %d bytes or was cut off", errForm, maxFormBody)
	}
	return parseForm(string(body))
}

// readQuery reads a page's query, refusing parameters the page does not
// know: a typo must not silently show everything.
func readQuery(r *http.Request, known ...string) (form, error) {
	q, err := parseForm(r.URL.RawQuery)
	if err != nil {
		return nil, err
	}
	for name := range q {
		if !slices.Contains(known, name) {
			return nil, fmt.Errorf("unknown parameter %q: this page takes %s", shorten(name, 40), strings.Join(known, ", "))
		}
	}
	return q, nil
}

// devicePageSize is how many devices a page of the devices list shows.
const devicePageSize = 50

// deviceQuery is what the devices page's filter form sends.
var deviceQuery = []string{"q", "state", "product", "batch", "class", "suite", "cloud", "after"}

// Classes of silicon (a device's root of trust) and the cloud states one
// filters by, as the filter's selects offer them.
var (
	rootsOfTrust = []string{"puf", "keygen", "inject"}
	cloudFilters = []string{store.CloudPending, store.CloudFailed}
)

// deviceFilter decodes the devices page's query into a store filter,
// checking every value: a bad one is an error naming it.
func deviceFilter(q form) (store.DeviceFilter, error) {
	f := store.DeviceFilter{Limit: devicePageSize + 1, IdentityPrefix: strings.TrimSpace(q.Get("q")),
		ProductID: q.Get("product"), BatchID: q.Get("batch"), RootOfTrust: q.Get("class"), CloudState: q.Get("cloud")}
	if st := q.Get("state"); st != "" {
		if !slices.Contains(store.DeviceStates, store.DeviceState(st)) {
			return f, fmt.Errorf("state %q is not a device state (%s)", shorten(st, 40), joinStates())
		}
		f.State = store.DeviceState(st)
	}
	if s := q.Get("suite"); s != "" {
		if _, err := sigalg.Lookup(s); err != nil {
			return f, fmt.Errorf("suite %q is not a signature suite the platform knows", shorten(s, 40))
		}
		f.Algorithm = sigalg.ID(s)
	}
	if f.RootOfTrust != "" && !slices.Contains(rootsOfTrust, f.RootOfTrust) {
		return f, fmt.Errorf("class %q is not a root of trust (%s)", shorten(f.RootOfTrust, 40), strings.Join(rootsOfTrust, ", "))
	}
	if len(f.ProductID) > 64 || len(f.BatchID) > 256 {
		return f, errors.New("the product or batch is too long to name one")
	}
	if a := q.Get("after"); a != "" {
		id, err := identity.Parse(a)
		if err != nil {
			return f, errors.New("after must be a device identity, 64 lowercase hex characters")
		}
		f.After = id
	}
	if err := f.Validate(); err != nil {
		if f.IdentityPrefix != "" {
			if _, _, perr := store.IdentityPrefixRange(f.IdentityPrefix); perr != nil {
				return f, errors.New("the identity prefix must be 1 to 64 hex digits (0-9, a-f)")
			}
		}
		return f, fmt.Errorf("cloud state must be %s or %s", store.CloudPending, store.CloudFailed)
	}
	return f, nil
}

func joinStates() string {
	var out []string
	for _, s := range store.DeviceStates {
		out = append(out, string(s))
	}
	return strings.Join(out, ", ")
}

// afterSeq reads a page's after= sequence number: empty is 0.
func afterSeq(v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, errors.New("after must be a whole number, 0 or more")
	}
	return n, nil
}

// hexString is the hex of a serial or identity held as bytes.
func hexString(v any) string {
	switch b := v.(type) {
	case [16]byte:
		return fmt.Sprintf("%x", b[:])
	case [32]byte:
		return fmt.Sprintf("%x", b[:])
	case identity.ID:
		return b.String()
	}
	return fmt.Sprint(v)
}

// uploadFile is the upload form's file field.
const uploadFile = "manifest"

// readUploadFields reads an upload's fields up to its file, which it
// returns unread: the fields must come first, as a browser sends them
// (the file input is the form's last). A file before the fields, a field
// too large or repeated, or no file is an error.
func readUploadFields(mr *multipart.Reader) (form, io.Reader, error) {
	fields := form{}
	for n := 0; ; n++ {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, nil, errors.New("the upload has no manifest file: choose one")
		}
		if err != nil {
			return nil, nil, errors.New("the upload is not a well-formed multipart form")
		}
		name := part.FormName()
		if name == uploadFile {
			return fields, part, nil
		}
		if n >= maxFields || name == "" || part.FileName() != "" {
			return nil, nil, fmt.Errorf("the upload has an unexpected part %q before the manifest file", shorten(name, 40))
		}
		if _, seen := fields[name]; seen {
			return nil, nil, fmt.Errorf("field %q is given twice", shorten(name, 40))
		}
		v, err := io.ReadAll(io.LimitReader(part, maxFieldSize+1))
		if err != nil {
			return nil, nil, errors.New("the upload was cut off")
		}
		if len(v) > maxFieldSize || !utf8.Valid(v) {
			return nil, nil, fmt.Errorf("field %q is longer than %d bytes or not UTF-8", shorten(name, 40), maxFieldSize)
		}
		fields[name] = []string{string(v)}
	}
}
