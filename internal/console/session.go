package console

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/audit"
)

// csrfLabel is what a session's CSRF value is an HMAC of, under the
// session's secret: the value cannot be made without the secret, which
// lives only in an HttpOnly cookie, and needs no key shared between
// replicas.
const csrfLabel = "hallmark console csrf v1"

// csrfToken is the hidden csrf field of every form of a session.
func csrfToken(secret admin.SessionSecret) string {
	m := hmac.New(sha256.New, secret[:])
	m.Write([]byte(csrfLabel))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrfValid compares a posted csrf value with the session's, in constant
// time.
func csrfValid(secret admin.SessionSecret, posted string) bool {
	want := csrfToken(secret)
	return len(posted) == len(want) && hmac.Equal([]byte(posted), []byte(want))
}

// parseSessionCookie reads a cookie value: the secret, unpadded
// base64url, nothing else.
func parseSessionCookie(v string) (admin.SessionSecret, bool) {
	var s admin.SessionSecret
	if len(v) != base64.RawURLEncoding.EncodedLen(len(s)) {
		return s, false
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(v)
	if err != nil || len(raw) != len(s) {
		return s, false
	}
	copy(s[:], raw)
	return s, true
}

// sessionCookie is the cookie that carries s, expiring with it.
func sessionCookie(s admin.Session, now time.Time) *http.Cookie {
	maxAge := int(s.ExpiresAt.Sub(now) / time.Second)
	if maxAge < 1 {
		maxAge = 1
	}
	return &http.Cookie{Name: CookieName, Value: base64.RawURLEncoding.EncodeToString(s.Secret[:]), Path: "/",
		MaxAge: maxAge, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode}
}

// clearCookie makes the browser forget the session cookie.
func clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode})
}

// session returns the request's live session; ok is false without one
// (no cookie, a malformed one, or a session ended), and err reports a
// failure to ask.
func (h *Handler) session(r *http.Request) (s admin.Session, ok bool, err error) {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return s, false, nil
	}
	secret, ok := parseSessionCookie(c.Value)
	if !ok {
		return s, false, nil
	}
	s, err = h.console.Authenticate(r.Context(), secret, remoteAddr(r))
	var e *admin.Error
	if errors.As(err, &e) && e.Code == admin.CodeUnauthorized {
		return s, false, nil
	}
	if err != nil {
		return s, false, err
	}
	return s, true, nil
}

// page serves a GET page to a signed-in operator, and sends anyone else
// to the sign-in form.
func (h *Handler) page(fn func(http.ResponseWriter, *http.Request, *admin.Session)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ok, err := h.session(r)
		switch {
		case err != nil:
			h.fail(w, r, nil, err)
		case !ok:
			http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
		default:
			s.Caller.Route = routeOf(r)
			fn(w, r, &s)
		}
	})
}

// routeOf is the console route a request matched, as a path: what the
// audit log files a call under until the use case knows its subject.
func routeOf(r *http.Request) string {
	_, path, _ := strings.Cut(r.Pattern, " ")
	path = strings.TrimSuffix(strings.TrimSuffix(path, "{$}"), "/")
	if path == "" {
		return "/console"
	}
	return path
}

// action serves a form POST of a signed-in operator: from this console's
// own origin (the browser's Sec-Fetch-Site or Origin say so when sent),
// with a session, and carrying the session's csrf value. Anything else
// is refused before the form is acted on: nothing changes.
func (h *Handler) action(fn func(http.ResponseWriter, *http.Request, *admin.Session, form)) http.Handler {
	return h.sameOrigin(func(w http.ResponseWriter, r *http.Request, s *admin.Session) {
		f, err := readForm(w, r)
		if err != nil {
			h.renderError(w, r, s, http.StatusBadRequest, err.Error())
			return
		}
		if !csrfValid(s.Secret, f.Get("csrf")) {
			h.renderError(w, r, s, http.StatusForbidden, "This form is not from this session (its csrf value is missing or wrong), so nothing was done. Reload the page and try again.")
			return
		}
		fn(w, r, s, f)
	})
}

// sameOrigin admits a POST from this console's origin with a live
// session; the body is left unread.
func (h *Handler) sameOrigin(fn func(http.ResponseWriter, *http.Request, *admin.Session)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h.origins.Check(r); err != nil {
			h.renderError(w, r, nil, http.StatusForbidden, "This request came from another site, so it was refused and nothing changed.")
			return
		}
		s, ok, err := h.session(r)
		switch {
		case err != nil:
			h.fail(w, r, nil, err)
		case !ok:
			http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
		default:
			s.Caller.Route = routeOf(r)
			fn(w, r, &s)
		}
	})
}

// signInView is the sign-in page's data.
type signInView struct {
	Error string
}

func (h *Handler) signInPage(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, nil, http.StatusOK, "signin", "Sign in", signInView{})
}

// signIn opens a session for the holder of an API token.
func (h *Handler) signIn(w http.ResponseWriter, r *http.Request) {
	if err := h.origins.Check(r); err != nil {
		h.renderError(w, r, nil, http.StatusForbidden, "This sign-in came from another site, so it was refused.")
		return
	}
	addr := remoteAddr(r)
	if h.guard != nil {
		// Locked out: answered before the token is looked up, as the API
		// answers its admin routes.
		if wait := h.guard.LockedFor(addr); wait > 0 {
			secs := int((wait + time.Second - 1) / time.Second)
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			h.render(w, r, nil, http.StatusTooManyRequests, "signin", "Sign in",
				signInView{Error: fmt.Sprintf("Too many failed sign-ins from this address; try again in %d s.", secs)})
			return
		}
	}
	f, err := readForm(w, r)
	if err != nil {
		h.render(w, r, nil, http.StatusBadRequest, "signin", "Sign in", signInView{Error: err.Error()})
		return
	}
	s, err := h.console.SignIn(r.Context(), f.Get("token"), addr)
	var e *admin.Error
	if errors.As(err, &e) && e.Code == admin.CodeUnauthorized {
		if h.guard != nil && f.Get("token") != "" {
			h.guard.Fail(addr)
		}
		h.render(w, r, nil, http.StatusUnauthorized, "signin", "Sign in",
			signInView{Error: "That token does not sign in: it is unknown, wrong, expired or revoked."})
		return
	}
	if err != nil {
		h.fail(w, r, nil, err)
		return
	}
	http.SetCookie(w, sessionCookie(s, h.console.Now()))
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

// signOut ends the session in the store and in the browser.
func (h *Handler) signOut(w http.ResponseWriter, r *http.Request, s *admin.Session, _ form) {
	if err := h.console.SignOut(r.Context(), *s); err != nil {
		h.fail(w, r, s, err)
		return
	}
	clearCookie(w)
	http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
}

// remoteAddr is the client's address as the API's audit events name it.
func remoteAddr(r *http.Request) string { return audit.Source(r.RemoteAddr) }
