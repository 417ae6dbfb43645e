package httpapi

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
)

// The OpenAPI 3.1 document is built from the route table: the fixed parts
// (info, security schemes, the problem schema, tags) are an embedded JSON
// file, and each route contributes its operation from its RouteDoc, with
// request and response schemas generated from the Go types the handlers
// decode and encode. A route cannot be served without being documented,
// and a schema cannot drift from its type.

//go:embed openapi_base.json
var openapiFS embed.FS

// Auth is how a route authenticates its caller.
type Auth string

// Authentication kinds.
const (
	AuthNone      Auth = ""          // public
	AuthBearer    Auth = "bearer"    // admin token with RouteDoc.Scope
	AuthMutualTLS Auth = "mutualTLS" // device certificate
)

// RouteDoc describes a route in the OpenAPI document.
type RouteDoc struct {
	// OperationID is unique across routes, e.g. "createStation".
	OperationID string
	Summary     string
	Description string
	// Tag groups operations: stations, products, manifests, devices,
	// audit, tokens, platform, onboarding, device.
	Tag   string
	Auth  Auth
	Scope string // the scope an AuthBearer route needs
	// PathParams describes each {name} of the path.
	PathParams map[string]string
	// Query declares the query parameters; the server refuses others.
	Query []Param
	// Request is a value of the JSON body's type, nil for no JSON body.
	Request any
	// RawRequest describes a body that is not JSON (a manifest).
	RawRequest *RawBody
	// Responses are the success responses.
	Responses []Response
	// Problems lists the route's own problem codes. Codes every route of
	// its kind can give (unauthorized, forbidden and rate-limited for
	// AuthBearer, the body and query codes, internal) are added.
	Problems []string
}

// Param is a query parameter.
type Param struct {
	Name        string
	Description string
	Type        string // "string" (default) or "integer"
	Enum        []string
	Pattern     string
	Required    bool
}

// RawBody is a non-JSON request body.
type RawBody struct {
	MediaTypes  []string
	Description string
}

// Response is a success response.
type Response struct {
	Status      int
	Description string
	// Body is a value of the JSON body's type; nil for none.
	Body any
	// MediaType overrides application/json; Body is then ignored.
	MediaType string
}

var pathParamPattern = regexp.MustCompile(`\{([a-z_]+)\}`)

func (d *RouteDoc) check(path string) error {
	if d.OperationID == "" || d.Summary == "" || len(d.Responses) == 0 {
		return errors.New("doc needs an operation ID, a summary and a success response")
	}
	if (d.Auth == AuthBearer) != (d.Scope != "") {
		return errors.New("a bearer route needs a scope, and only a bearer route has one")
	}
	params := pathParamPattern.FindAllStringSubmatch(path, -1)
	if len(params) != len(d.PathParams) {
		return fmt.Errorf("path has %d parameters, doc describes %d", len(params), len(d.PathParams))
	}
	for _, m := range params {
		if _, ok := d.PathParams[m[1]]; !ok {
			return fmt.Errorf("path parameter %q is not described", m[1])
		}
	}
	for _, code := range d.Problems {
		if _, ok := lookupCode(code); !ok {
			return fmt.Errorf("unknown problem code %q", code)
		}
	}
	return nil
}

// problemCodesOf is every problem code a route can give.
func (d *RouteDoc) problemCodesOf() []string {
	codes := slices.Clone(d.Problems)
	if d.Auth == AuthBearer {
		// rate-limited: the back-off on failed authentication (AuthLimit).
		codes = append(codes, "unauthorized", "forbidden", "rate-limited")
	}
	if len(d.Query) > 0 || d.Request != nil {
		codes = append(codes, "malformed-request")
	}
	if d.Request != nil {
		codes = append(codes, "unknown-field", "body-too-large", "unsupported-media-type")
	}
	if d.RawRequest != nil {
		codes = append(codes, "body-too-large", "unsupported-media-type")
	}
	codes = append(codes, "internal")
	slices.Sort(codes)
	return slices.Compact(codes)
}

// OpenAPI returns the OpenAPI 3.1 document of every route registered so
// far, as indented JSON.
func (s *Server) OpenAPI() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.openapiCache != nil {
		return s.openapiCache, nil
	}
	base, err := openapiFS.ReadFile("openapi_base.json")
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(base, &doc); err != nil {
		return nil, fmt.Errorf("openapi base: %w", err)
	}
	components := doc["components"].(map[string]any)
	schemas := components["schemas"].(map[string]any)
	gen := &schemaGen{defs: schemas, types: map[string]reflect.Type{}}
	paths := map[string]any{}
	for _, rt := range s.routes {
		item, _ := paths[rt.Path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[rt.Path] = item
		}
		item[strings.ToLower(rt.Method)] = operation(rt, gen)
	}
	doc["paths"] = paths
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	s.openapiCache = append(out, '\n')
	return s.openapiCache, nil
}

func operation(rt Route, gen *schemaGen) map[string]any {
	d := rt.Doc
	op := map[string]any{"operationId": d.OperationID, "summary": d.Summary}
	if d.Description != "" {
		op["description"] = d.Description
	}
	if d.Tag != "" {
		op["tags"] = []string{d.Tag}
	}
	switch d.Auth {
	case AuthBearer:
		op["security"] = []any{map[string]any{"bearer": []string{d.Scope}}}
	case AuthMutualTLS:
		op["security"] = []any{map[string]any{"deviceCertificate": []string{}}}
	default:
		op["security"] = []any{}
	}
	if params := parameters(rt.Path, d); len(params) > 0 {
		op["parameters"] = params
	}
	if d.Request != nil {
		op["requestBody"] = map[string]any{"required": true, "content": map[string]any{
			"application/json": map[string]any{"schema": gen.schema(reflect.TypeOf(d.Request))},
		}}
	}
	if d.RawRequest != nil {
		content := map[string]any{}
		for _, m := range d.RawRequest.MediaTypes {
			content[m] = map[string]any{"schema": map[string]any{"type": "string"}}
		}
		op["requestBody"] = map[string]any{"required": true, "description": d.RawRequest.Description, "content": content}
	}
	responses := map[string]any{}
	for _, resp := range d.Responses {
		r := map[string]any{"description": resp.Description}
		switch {
		case resp.MediaType != "":
			r["content"] = map[string]any{resp.MediaType: map[string]any{"schema": map[string]any{"type": "string"}}}
		case resp.Body != nil:
			r["content"] = map[string]any{"application/json": map[string]any{"schema": gen.schema(reflect.TypeOf(resp.Body))}}
		}
		responses[strconv.Itoa(resp.Status)] = r
	}
	for status, codes := range problemsByStatus(d.problemCodesOf()) {
		responses[strconv.Itoa(status)] = map[string]any{
			"description": "Problem: " + strings.Join(codes, ", ") + ".",
			"content": map[string]any{"application/problem+json": map[string]any{
				"schema": map[string]any{"$ref": "#/components/schemas/Problem"},
			}},
		}
	}
	op["responses"] = responses
	return op
}

func problemsByStatus(codes []string) map[int][]string {
	out := map[int][]string{}
	for _, code := range codes {
		c, _ := lookupCode(code)
		out[c.Status] = append(out[c.Status], code)
	}
	return out
}

func parameters(path string, d RouteDoc) []any {
	var params []any
	for _, m := range pathParamPattern.FindAllStringSubmatch(path, -1) {
		params = append(params, map[string]any{
			"name": m[1], "in": "path", "required": true, "description": d.PathParams[m[1]],
			"schema": map[string]any{"type": "string"},
		})
	}
	for _, q := range d.Query {
		schema := map[string]any{"type": "string"}
		if q.Type != "" {
			schema["type"] = q.Type
		}
		if len(q.Enum) > 0 {
			schema["enum"] = q.Enum
		}
		if q.Pattern != "" {
			schema["pattern"] = q.Pattern
		}
		params = append(params, map[string]any{
			"name": q.Name, "in": "query", "required": q.Required, "description": q.Description, "schema": schema,
		})
	}
	return params
}

// schemaGen generates JSON Schemas (2020-12, as OpenAPI 3.1 uses) from Go
// types, putting each named struct in components/schemas once.
type schemaGen struct {
	defs  map[string]any
	types map[string]reflect.Type
}

var (
	timeType     = reflect.TypeFor[time.Time]()
	identityType = reflect.TypeFor[identity.ID]()
	bytesType    = reflect.TypeFor[[]byte]()
	rawJSONType  = reflect.TypeFor[json.RawMessage]()
)

func (g *schemaGen) schema(t reflect.Type) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == identityType:
		return map[string]any{"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "Identity: 64 lowercase hex characters."}
	case t == bytesType:
		return map[string]any{"type": "string", "contentEncoding": "base64"}
	case t == rawJSONType:
		return map[string]any{}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.schema(t.Elem())}
	case reflect.Struct:
		return g.structRef(t)
	}
	return map[string]any{}
}

func (g *schemaGen) structRef(t reflect.Type) map[string]any {
	name := t.Name()
	if prior, ok := g.types[name]; ok && prior != t {
		name = strings.ReplaceAll(t.String(), ".", "_") // another package's type of the same name
	}
	ref := map[string]any{"$ref": "#/components/schemas/" + name}
	if _, ok := g.types[name]; ok {
		return ref
	}
	def := map[string]any{"type": "object", "additionalProperties": false}
	g.defs[name], g.types[name] = def, t // before the fields: a type may refer to itself
	props := map[string]any{}
	var required []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || tag == "-" {
			continue
		}
		if tag == "" {
			tag = f.Name
		}
		prop := g.schema(f.Type)
		if doc := f.Tag.Get("doc"); doc != "" {
			prop = withKey(prop, "description", doc)
		}
		if p := f.Tag.Get("pattern"); p != "" {
			prop = withKey(prop, "pattern", p)
		}
		if e := f.Tag.Get("enum"); e != "" {
			prop = withEnum(prop, strings.Split(e, ","))
		}
		props[tag] = prop
		if !strings.Contains(opts, "omitempty") && f.Type.Kind() != reflect.Pointer {
			required = append(required, tag)
		}
	}
	def["properties"] = props
	if len(required) > 0 {
		def["required"] = required
	}
	return ref
}

// withKey adds a keyword; next to a $ref it wraps the reference, which
// JSON Schema 2020-12 allows alongside other keywords.
func withKey(s map[string]any, key string, v any) map[string]any {
	out := map[string]any{}
	for k, val := range s {
		out[k] = val
	}
	out[key] = v
	return out
}

func withEnum(s map[string]any, values []string) map[string]any {
	if s["type"] == "array" {
		return withKey(s, "items", withKey(s["items"].(map[string]any), "enum", values))
	}
	return withKey(s, "enum", values)
}

func (s *Server) serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	doc, err := s.OpenAPI()
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(doc)
}
