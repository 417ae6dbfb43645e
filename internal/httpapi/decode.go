package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
)

// MaxJSONBody bounds every JSON request body.
const MaxJSONBody = 64 << 10

// validator is a request body that checks its own values after decoding.
type validator interface {
	validate() error
}

// decodeJSON reads r's body into v strictly: Content-Type application/json
// (charset utf-8 at most), at most limit bytes, exactly one JSON object,
// no member that v does not define, none repeated, none in another case
// than v spells it. Each failure is a problem naming what was wrong; v is
// then unusable and nothing must be done with it.
func decodeJSON(r *http.Request, limit int64, v any) error {
	if err := checkContentType(r, "application/json"); err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return problemf("body-too-large", "the body exceeds the limit of %d bytes", limit)
		}
		// The transport's own limits (body-too-slow) name themselves.
		var p *Problem
		if errors.As(err, &p) {
			return p
		}
		return problemf("malformed-request", "reading the body failed")
	}
	return decodeJSONBytes(body, v)
}

// decodeJSONBytes is decodeJSON after the transport checks; fuzz tests
// drive it directly.
func decodeJSONBytes(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return problemf("malformed-request", "the body is empty; a JSON object is required")
	}
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); trimmed[0] != '{' {
		return problemf("malformed-request", "the body must be a JSON object")
	}
	if err := checkMembers(body, v); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonProblem(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return problemf("malformed-request", "data after the JSON value at offset %d", dec.InputOffset())
	}
	if val, ok := v.(validator); ok {
		if err := val.validate(); err != nil {
			// The admin use cases' rules, as a problem like every other
			// refusal of decoding.
			return problemFor(err)
		}
	}
	return nil
}

// jsonProblem turns a decoding error into a problem. encoding/json's
// messages name a field, a type and an offset of the caller's own input,
// which is safe and useful to repeat.
func jsonProblem(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return problemf("malformed-request", "invalid JSON at offset %d: %s", syntax.Offset, syntax.Error())
	case errors.As(err, &typ):
		if typ.Field != "" {
			return problemf("malformed-request", "member %q must be %s, not JSON %s", typ.Field, typeName(typ.Type), typ.Value)
		}
		return problemf("malformed-request", "the body must be a JSON object, not %s", typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return problemf("malformed-request", "the JSON value is truncated")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return problemf("unknown-field", "%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	// Errors from a member's own UnmarshalText or UnmarshalJSON, such as a
	// malformed identity.
	return problemf("malformed-request", "%s", strings.TrimPrefix(err.Error(), "json: "))
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64, reflect.Uint32:
		return "an integer"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return t.String()
}

// checkMembers refuses what encoding/json would silently accept: a
// top-level member spelt in another case than the struct's tag (it matches
// case-insensitively) and a member repeated in any object (the last would
// win, so two parsers could read the same body differently).
func checkMembers(body []byte, v any) error {
	known := jsonNames(reflect.TypeOf(v))
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	type frame struct {
		object bool
		keys   map[string]bool
		expect bool // the next string token is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return nil // the decoder proper reports syntax errors
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		key, isKey := tok.(string)
		if top != nil && top.object && top.expect && isKey {
			if top.keys[key] {
				return problemf("malformed-request", "member %q appears more than once", key)
			}
			top.keys[key] = true
			if len(stack) == 1 && known != nil && !known[key] {
				return problemf("unknown-field", "unknown field %q", key)
			}
			top.expect = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, keys: map[string]bool{}, expect: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].expect = true // a value ended; a key follows
		}
		if len(stack) == 0 {
			return nil // one value read; the decoder checks what follows
		}
	}
}

// jsonNames returns the exact member names of a struct type (through a
// pointer), or nil for other types.
func jsonNames(t reflect.Type) map[string]bool {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	names := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		names[name] = true
	}
	return names
}

// checkContentType accepts the listed media types; a charset parameter
// other than utf-8, or any other parameter, is refused.
func checkContentType(r *http.Request, accept ...string) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return problemf("unsupported-media-type", "no Content-Type; send %s", strings.Join(accept, " or "))
	}
	media, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return problemf("unsupported-media-type", "Content-Type %q does not parse", ct)
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return problemf("unsupported-media-type", "Content-Type parameter %s=%s is not accepted", k, v)
		}
	}
	for _, a := range accept {
		if media == a {
			return nil
		}
	}
	return problemf("unsupported-media-type", "Content-Type %s; send %s", media, strings.Join(accept, " or "))
}

// fieldError is the problem for one member's bad value.
func fieldError(field, format string, args ...any) error {
	return problemf("malformed-request", "%s: %s", field, fmt.Sprintf(format, args...))
}
