package pkcs11kms

import (
	"errors"
	"strings"
	"testing"
)

func TestParseURI(t *testing.T) {
	u, err := ParseURI("pkcs11:token=Hallmark%20CA;serial=0adb229d611099cc;slot-id=3;manufacturer=SoftHSM%20project" +
		"?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/hallmark/pin")
	if err != nil {
		t.Fatal(err)
	}
	if u.Token != "Hallmark CA" || u.Serial != "0adb229d611099cc" || u.SlotID == nil || *u.SlotID != 3 ||
		u.Manufacturer != "SoftHSM project" || u.ModulePath != "/usr/lib/softhsm/libsofthsm2.so" || u.PINSource != "/etc/hallmark/pin" {
		t.Fatalf("parsed %+v", u)
	}
	// RFC 7512 leaves '+' alone; a bare path and file:/// are PIN sources.
	for in, want := range map[string]string{
		"token=a+b?pin-source=/p":           "/p",
		"token=a+b?pin-source=file:///p%20": "/p ",
	} {
		u, err := ParseURI(in)
		if err != nil || u.Token != "a+b" || u.PINSource != want {
			t.Errorf("ParseURI(%q) = %+v, %v", in, u, err)
		}
	}
	// TokenURI and ParseURI agree on any label.
	for _, label := range []string{"plain", "with space", "semi;colon?and&more=%", "ünï"} {
		u, err := ParseURI(TokenURI(label, "/m o/d.so", "/p;in"))
		if err != nil || u.Token != label || u.ModulePath != "/m o/d.so" || u.PINSource != "/p;in" {
			t.Errorf("round trip of %q: %+v, %v", label, u, err)
		}
	}
}

func TestParseURIRefuses(t *testing.T) {
	for in, want := range map[string]string{
		"token=a;object=ca":                     "object= names a key",
		"token=a;id=%01":                        "id= names a key",
		"token=a;type=private":                  "type= names a key",
		"token=a?pin-value=1234":                "pin-value is refused",
		"token=a?pin-value=%zz":                 "pin-value is refused",
		"token=a;token=b":                       "given twice",
		"token=a?module-path=/a&module-path=/b": "given twice",
		"token=a;colour=blue":                   "unknown path attribute",
		"token=a?colour=blue":                   "unknown query attribute",
		"token=a?module-name=softhsm2":          "module-path=",
		"token=a?module-path=libsofthsm2.so":    "absolute",
		"token=a?pin-source=pin.txt":            "absolute",
		"token=a?pin-source=file://host/p":      "local files",
		"token=%4":                              "percent-encoding",
		"token=%g0":                             "percent-encoding",
		"token":                                 "NAME=VALUE",
		"=a":                                    "NAME=VALUE",
		"Token=a":                               "lower-case",
		"slot-id=x":                             "decimal",
		"slot-id=99999999999":                   "decimal",
		"library-version=1.x":                   "MAJOR",
		"token=a#frag":                          "fragments",
	} {
		_, err := ParseURI(in)
		if !errors.Is(err, ErrURI) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseURI(%q) = %v, want ErrURI saying %q", in, err, want)
		}
	}
	if _, err := ParseURI(strings.Repeat("a", maxURILen+1)); !errors.Is(err, ErrURI) {
		t.Error("an overlong URI was accepted")
	}
}

// FuzzParseURI: any input is parsed or refused with ErrURI, never a
// panic; a pin-value never reaches an error; and what TokenURI writes for
// a parsed token label parses back to that label.
func FuzzParseURI(f *testing.F) {
	for _, s := range []string{
		"pkcs11:token=Hallmark%20CA?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/pin",
		"token=a;serial=1;slot-id=0;model=SoftHSM%20v2;manufacturer=x;slot-description=d;slot-manufacturer=m",
		"library-manufacturer=a;library-description=b;library-version=2.6",
		"token=a?pin-value=secret", "token=a;object=b", "?", ";", "token=%", "token=%2", "a=b=c",
		"token=a?pin-source=file:///x&module-path=/y", "token=\x00", "slot-id=18446744073709551616",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURI(s)
		if err != nil {
			if !errors.Is(err, ErrURI) {
				t.Fatalf("error without ErrURI: %v", err)
			}
			if _, v, ok := strings.Cut(s, "pin-value="); ok && len(v) >= 4 && strings.Contains(err.Error(), v) {
				t.Fatalf("error repeats the pin-value: %v", err)
			}
			return
		}
		back, err := ParseURI(TokenURI(u.Token, u.ModulePath, u.PINSource))
		if err != nil || back.Token != u.Token || back.ModulePath != u.ModulePath || back.PINSource != u.PINSource {
			t.Fatalf("re-encoding %+v gives %+v, %v", u, back, err)
		}
	})
}
