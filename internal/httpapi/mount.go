package httpapi

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// prefixPattern is what Mount takes: one or more path segments, ending
// in "/".
var prefixPattern = regexp.MustCompile(`^(/[a-z0-9._-]+)+/$`)

// Mount serves h for every request whose path is under prefix ("/console/"),
// inside the server's middleware (request ID, access log, metrics, panic
// recovery) but outside the route table: h is not in the OpenAPI
// document, and the route table's query guard does not apply, for h
// serves something other than the API (the operators' web console) and
// checks its own input. A path of the route table under prefix, or a
// prefix mounted already, is refused; call it before the server serves.
func (s *Server) Mount(prefix string, h http.Handler) error {
	if !prefixPattern.MatchString(prefix) || h == nil {
		return fmt.Errorf("httpapi: mount %q: want a path ending in / and a handler", prefix)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rt := range s.routes {
		if strings.HasPrefix(rt.Path+"/", prefix) {
			return fmt.Errorf("httpapi: mount %q: route %q is under it", prefix, rt.Pattern())
		}
	}
	if _, pattern := s.mux.Handler(&http.Request{Method: "GET", URL: &url.URL{Path: prefix}}); pattern == prefix {
		return fmt.Errorf("httpapi: mount %q: mounted already", prefix)
	}
	s.mux.Handle(prefix, h)
	return nil
}

// AuthGuard is the per-address back-off on failed admin authentication
// (AuthLimit) for a front door mounted beside the API that authenticates
// admin tokens itself: the console's sign-in. It is the API's own
// table, so an address cannot earn more guesses by switching doors.
type AuthGuard struct{ s *Server }

// AuthGuard returns the server's authentication back-off.
func (s *Server) AuthGuard() AuthGuard { return AuthGuard{s: s} }

// LockedFor returns how long addr (a client address, host:port or host)
// remains locked out; zero when it is not.
func (g AuthGuard) LockedFor(addr string) time.Duration {
	return g.s.authLimit.lockedFor(addr, g.s.now())
}

// Fail counts a failed authentication from addr.
func (g AuthGuard) Fail(addr string) { g.s.authLimit.fail(addr, g.s.now()) }
