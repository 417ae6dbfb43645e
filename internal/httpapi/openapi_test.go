package httpapi

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestOpenAPIInStepWithRoutes(t *testing.T) {
	e := newEnv(t)
	// The onboarding routes join through Handle; their handlers are not
	// called here (public POST and mutual-TLS routes are not probed), so no
	// service is needed to check their documentation.
	if err := e.srv.HandleOnboarding(nil, nil); err != nil {
		t.Fatal(err)
	}
	if n := len(e.srv.Routes()); n < 20 {
		t.Fatalf("only %d routes", n)
	}
	checkOpenAPISync(t, e.srv)
	// The document served is the one checked.
	r := e.call(t, "GET", "/openapi.json", "", nil)
	doc, _ := e.srv.OpenAPI()
	if r.status != 200 || string(r.body) != string(doc) {
		t.Fatalf("served document differs (status %d)", r.status)
	}
}

// checkOpenAPISync checks srv's OpenAPI document against its route table
// and its mux, both ways, and that the document holds together. A test of
// a server with more routes mounted (onboarding) calls it too.
func checkOpenAPISync(t *testing.T, srv *Server) {
	t.Helper()
	raw, err := srv.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI    string                               `json:"openapi"`
		Paths      map[string]map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil || doc.OpenAPI != "3.1.0" {
		t.Fatalf("document: %v, version %q", err, doc.OpenAPI)
	}
	routes := srv.Routes()
	// Every route is documented, under its operation ID.
	for _, rt := range routes {
		op := doc.Paths[rt.Path][strings.ToLower(rt.Method)]
		if op == nil || op["operationId"] != rt.Doc.OperationID {
			t.Errorf("route %s is not in the document", rt.Pattern())
		}
	}
	// Every documented operation is a route the mux serves.
	documented := 0
	for path, item := range doc.Paths {
		for method, op := range item {
			documented++
			pattern := strings.ToUpper(method) + " " + path
			if !slices.ContainsFunc(routes, func(rt Route) bool { return rt.Pattern() == pattern }) {
				t.Errorf("documented %s is not in the route table", pattern)
			}
			req := httptest.NewRequest(strings.ToUpper(method), samplePath(path), nil)
			if _, got := srv.mux.Handler(req); got != pattern {
				t.Errorf("documented %s: the mux routes %s to %q", pattern, req.URL.Path, got)
			}
			checkOperation(t, pattern, path, op)
		}
	}
	if documented != len(routes) {
		t.Errorf("%d operations documented, %d routes", documented, len(routes))
	}
	// Every reference resolves.
	for _, ref := range regexp.MustCompile(`"\$ref":\s*"#/components/schemas/([^"]+)"`).FindAllStringSubmatch(string(raw), -1) {
		if doc.Components.Schemas[ref[1]] == nil {
			t.Errorf("dangling reference to %s", ref[1])
		}
	}
	checkSecurityBehaviour(t, srv, routes)
}

// samplePath fills a path template's parameters with a plausible value.
func samplePath(path string) string {
	return pathParamPattern.ReplaceAllString(path, strings.Repeat("ab", 32))
}

func checkOperation(t *testing.T, pattern, path string, op map[string]any) {
	t.Helper()
	responses, _ := op["responses"].(map[string]any)
	if len(responses) == 0 || op["summary"] == "" || op["security"] == nil {
		t.Errorf("%s: needs responses, summary and security", pattern)
	}
	for status, resp := range responses {
		code, _ := strconv.Atoi(status)
		content, _ := resp.(map[string]any)["content"].(map[string]any)
		if code >= 400 && content["application/problem+json"] == nil {
			t.Errorf("%s: response %s is not a problem", pattern, status)
		}
	}
	var declared []string
	params, _ := op["parameters"].([]any)
	for _, p := range params {
		if p := p.(map[string]any); p["in"] == "path" {
			declared = append(declared, p["name"].(string))
		}
	}
	var inPath []string
	for _, m := range pathParamPattern.FindAllStringSubmatch(path, -1) {
		inPath = append(inPath, m[1])
	}
	if !slices.Equal(declared, inPath) {
		t.Errorf("%s: path parameters %v, documented %v", pattern, inPath, declared)
	}
	security, _ := op["security"].([]any)
	if len(security) > 0 {
		if responses["401"] == nil {
			t.Errorf("%s: secured but no 401", pattern)
		}
	}
}

// checkSecurityBehaviour sends each documented bearer route a request
// without a token, which must be refused, and each public GET one, which
// must not be: the document's security is the server's.
func checkSecurityBehaviour(t *testing.T, srv *Server, routes []Route) {
	t.Helper()
	for _, rt := range routes {
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, httptest.NewRequest(rt.Method, samplePath(rt.Path), nil))
		switch {
		case rt.Doc.Auth == AuthBearer && w.Code != http.StatusUnauthorized:
			t.Errorf("%s without a token: %d, want 401", rt.Pattern(), w.Code)
		case rt.Doc.Auth == AuthNone && rt.Method == "GET" && w.Code != http.StatusOK:
			t.Errorf("public %s: %d, want 200", rt.Pattern(), w.Code)
		}
	}
}

// TestOnlyHandleRegisters keeps every route in the table: no file of the
// package registers a handler on the mux except Server.Handle, and
// Server.Mount, which serves what is not the API (mount.go).
func TestOnlyHandleRegisters(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	fset := token.NewFileSet()
	for _, name := range files {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || (sel.Sel.Name != "Handle" && sel.Sel.Name != "HandleFunc") {
					return true
				}
				if inner, ok := sel.X.(*ast.SelectorExpr); ok && inner.Sel.Name == "mux" && fn.Name.Name != "Handle" && fn.Name.Name != "Mount" {
					t.Errorf("%s: %s registers on the mux outside Server.Handle", fset.Position(call.Pos()), fn.Name.Name)
				}
				return true
			})
		}
	}
}

func TestHandleRefusesBadRoutes(t *testing.T) {
	e := newEnv(t)
	ok := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	doc := RouteDoc{OperationID: "x", Summary: "x", Responses: []Response{{Status: 200, Description: "x"}}}
	for name, rt := range map[string]Route{
		"taken":               {Method: "GET", Path: "/healthz", Handler: ok, Doc: RouteDoc{OperationID: "y", Summary: "y", Responses: doc.Responses}},
		"operation taken":     {Method: "GET", Path: "/x", Handler: ok, Doc: RouteDoc{OperationID: "healthz", Summary: "y", Responses: doc.Responses}},
		"undocumented":        {Method: "GET", Path: "/x", Handler: ok},
		"param not described": {Method: "GET", Path: "/x/{id}", Handler: ok, Doc: doc},
		"bearer, no scope": {Method: "GET", Path: "/x", Handler: ok,
			Doc: RouteDoc{OperationID: "x", Summary: "x", Auth: AuthBearer, Responses: doc.Responses}},
		"unknown code": {Method: "GET", Path: "/x", Handler: ok,
			Doc: RouteDoc{OperationID: "x", Summary: "x", Problems: []string{"oops"}, Responses: doc.Responses}},
		"bad method": {Method: "get", Path: "/x", Handler: ok, Doc: doc},
		"bad path":   {Method: "GET", Path: "x", Handler: ok, Doc: doc},
		"no handler": {Method: "GET", Path: "/x", Doc: doc},
	} {
		if err := e.srv.Handle(rt); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A good one joins the document.
	if err := e.srv.Handle(Route{Method: "GET", Path: "/v1/extra/{id}", Handler: ok, Doc: RouteDoc{
		OperationID: "extra", Summary: "Extra.", PathParams: map[string]string{"id": "An ID."}, Responses: doc.Responses,
	}}); err != nil {
		t.Fatal(err)
	}
	checkOpenAPISync(t, e.srv)
	if d, _ := e.srv.OpenAPI(); !strings.Contains(string(d), `"/v1/extra/{id}"`) {
		t.Fatal("added route not documented")
	}
}
