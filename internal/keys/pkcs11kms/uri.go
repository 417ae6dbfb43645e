package pkcs11kms

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Environment variables the opener reads when the URI leaves something out.
const (
	// EnvModule names the PKCS #11 module (a shared library) when the URI
	// has no module-path.
	EnvModule = "HALLMARK_PKCS11_MODULE"
	// EnvPIN holds the user PIN when the URI has no pin-source.
	EnvPIN = "HALLMARK_PKCS11_PIN"
)

// ErrURI reports a pkcs11: URI this backend cannot use.
var ErrURI = errors.New("bad pkcs11 URI")

// URI is a parsed RFC 7512 URI naming a token, the unit a Manager works on.
// Key names come from callers (CreateKeyRequest.Name, Signer(name)), so a
// manager URI names no object: object=, id= and type= are refused rather
// than silently ignored or used as a filter that callers cannot see.
type URI struct {
	// Token attributes; the empty string matches any token.
	Token        string // token= (CK_TOKEN_INFO.label)
	Manufacturer string // manufacturer=
	Model        string // model=
	Serial       string // serial=
	// Slot attributes.
	SlotID           *uint  // slot-id=
	SlotDescription  string // slot-description=
	SlotManufacturer string // slot-manufacturer=
	// Library attributes, checked against C_GetInfo.
	LibraryManufacturer string // library-manufacturer=
	LibraryDescription  string // library-description=
	LibraryVersion      string // library-version=

	// ModulePath is the module's file name (query module-path=).
	ModulePath string
	// PINSource is the file the user PIN is read from (query pin-source=,
	// either "file:/path" or a bare absolute path).
	PINSource string
}

// maxURILen bounds a URI; RFC 7512 sets no limit, but labels are at most
// 32 bytes and a path a few thousand.
const maxURILen = 8192

// ParseURI parses a pkcs11: URI, with or without its "pkcs11:" prefix
// (keys.Open hands the backend the part after the scheme). Attribute
// values are percent-decoded per RFC 7512; an attribute given twice, an
// unknown attribute, an object attribute and pin-value are errors.
func ParseURI(s string) (*URI, error) {
	loc := strings.TrimPrefix(s, "pkcs11:")
	u, err := parseURI(loc)
	if err != nil {
		// The URI may carry a pin-value the caller should not have put
		// there; name the problem, not the URI.
		return nil, fmt.Errorf("%w: %v", ErrURI, err)
	}
	return u, nil
}

func parseURI(loc string) (*URI, error) {
	if len(loc) > maxURILen {
		return nil, fmt.Errorf("%d bytes, want at most %d", len(loc), maxURILen)
	}
	path, query, _ := strings.Cut(loc, "?")
	if strings.Contains(path, "#") || strings.Contains(query, "#") {
		return nil, errors.New("fragments (#) are not part of a pkcs11 URI")
	}
	u := &URI{}
	seen := map[string]bool{}
	if path != "" {
		for attr := range strings.SplitSeq(path, ";") {
			name, value, err := splitAttr(attr, "path")
			if err != nil {
				return nil, err
			}
			if seen[name] {
				return nil, fmt.Errorf("path attribute %q given twice", name)
			}
			seen[name] = true
			if err := u.setPath(name, value); err != nil {
				return nil, err
			}
		}
	}
	if query != "" {
		for attr := range strings.SplitSeq(query, "&") {
			name, value, err := splitAttr(attr, "query")
			if err != nil {
				return nil, err
			}
			if seen["?"+name] {
				return nil, fmt.Errorf("query attribute %q given twice", name)
			}
			seen["?"+name] = true
			if err := u.setQuery(name, value); err != nil {
				return nil, err
			}
		}
	}
	return u, nil
}

func splitAttr(attr, part string) (name, value string, err error) {
	rawName, rawValue, ok := strings.Cut(attr, "=")
	if !ok || rawName == "" {
		return "", "", fmt.Errorf("%s attribute %q: want NAME=VALUE", part, truncate(attr))
	}
	for _, c := range rawName {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return "", "", fmt.Errorf("%s attribute name %q: want lower-case letters, digits and '-'", part, truncate(rawName))
		}
	}
	if rawName == "pin-value" {
		// Checked before decoding so that not even a malformed PIN is
		// echoed back.
		return "", "", errors.New("pin-value is refused: a PIN in a URI shows in ps, shell history and logs; " +
			"put it in a file readable only by you (mode 0600) and use pin-source=file:/path, or set " + EnvPIN)
	}
	value, err = pctDecode(rawValue)
	if err != nil {
		return "", "", fmt.Errorf("%s attribute %q: %v", part, rawName, err)
	}
	return rawName, value, nil
}

func (u *URI) setPath(name, value string) error {
	switch name {
	case "token":
		u.Token = value
	case "manufacturer":
		u.Manufacturer = value
	case "model":
		u.Model = value
	case "serial":
		u.Serial = value
	case "slot-id":
		id, err := strconv.ParseUint(value, 10, 32)
		if err != nil {
			return fmt.Errorf("slot-id %q: want a decimal number", truncate(value))
		}
		v := uint(id)
		u.SlotID = &v
	case "slot-description":
		u.SlotDescription = value
	case "slot-manufacturer":
		u.SlotManufacturer = value
	case "library-manufacturer":
		u.LibraryManufacturer = value
	case "library-description":
		u.LibraryDescription = value
	case "library-version":
		if !validVersion(value) {
			return fmt.Errorf("library-version %q: want MAJOR or MAJOR.MINOR", truncate(value))
		}
		u.LibraryVersion = value
	case "object", "id", "type":
		return fmt.Errorf("%s= names a key, but a key-manager URI names a token: "+
			"Hallmark chooses key labels itself (the key names it is given); drop %s= from the URI", name, name)
	default:
		return fmt.Errorf("unknown path attribute %q (known: token, manufacturer, model, serial, slot-id, "+
			"slot-description, slot-manufacturer, library-manufacturer, library-description, library-version)", truncate(name))
	}
	return nil
}

func (u *URI) setQuery(name, value string) error {
	switch name {
	case "module-path":
		if value == "" || !strings.HasPrefix(value, "/") {
			return fmt.Errorf("module-path %q: want an absolute file name", truncate(value))
		}
		u.ModulePath = value
	case "pin-source":
		p := strings.TrimPrefix(value, "file:")
		// RFC 8089 also allows file:///path.
		if rest, ok := strings.CutPrefix(p, "//"); ok {
			if !strings.HasPrefix(rest, "/") {
				return fmt.Errorf("pin-source %q: only local files (file:/path or file:///path)", truncate(value))
			}
			p = rest
		}
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("pin-source %q: want file:/absolute/path or /absolute/path", truncate(value))
		}
		u.PINSource = p
	case "module-name":
		return errors.New("module-name is not supported: give the library's file name as module-path=/path/to/module.so")
	default:
		return fmt.Errorf("unknown query attribute %q (known: module-path, pin-source)", truncate(name))
	}
	return nil
}

func validVersion(v string) bool {
	major, minor, hasMinor := strings.Cut(v, ".")
	ok := func(s string) bool {
		_, err := strconv.ParseUint(s, 10, 8)
		return err == nil
	}
	return ok(major) && (!hasMinor || ok(minor))
}

// pctDecode decodes RFC 3986 percent-encoding. Unlike url.QueryUnescape it
// leaves '+' alone, as RFC 7512 requires.
func pctDecode(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) || unhex(s[i+1]) < 0 || unhex(s[i+2]) < 0 {
			return "", errors.New("bad percent-encoding: want %XX with two hex digits")
		}
		b.WriteByte(byte(unhex(s[i+1])<<4 | unhex(s[i+2])))
		i += 2
	}
	return b.String(), nil
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// pctEncode encodes a value for a URI path or query attribute: everything
// but unreserved characters, and '/' and ':' in the query, where RFC 7512
// allows them.
func pctEncode(s string, query bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || query && (c == '/' || c == ':') {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// TokenURI returns the manager URI for a token label, a module and a PIN
// file, percent-encoded as RFC 7512 wants.
func TokenURI(label, modulePath, pinFile string) string {
	s := "pkcs11:token=" + pctEncode(label, false)
	var q []string
	if modulePath != "" {
		q = append(q, "module-path="+pctEncode(modulePath, true))
	}
	if pinFile != "" {
		q = append(q, "pin-source=file:"+pctEncode(pinFile, true))
	}
	if len(q) > 0 {
		s += "?" + strings.Join(q, "&")
	}
	return s
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// redactedLocation is a location for an error message: the URI unless it
// holds a pin-value, which must not reach a log.
func redactedLocation(loc string) string {
	if strings.Contains(strings.ToLower(loc), "pin-value") {
		return "(URI withheld: it contains a pin-value)"
	}
	return truncate(loc)
}
