package audit

import (
	"regexp"
	"strings"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Identifier patterns of the names that reach the log as subjects and
// actors. They are the platform's formats (the admin use cases and the
// HTTP layer validate against the same values), kept here because the
// log is the last place that checks them.
var (
	// TokenIDPattern is an admin token's public ID.
	TokenIDPattern = regexp.MustCompile(`^[a-z0-9]{8,16}$`)
	// ProductIDPattern is a product's slug.
	ProductIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	// BatchPattern is the manifest format's batch name.
	BatchPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	// campaignIDPattern is an update campaign's ID (internal/campaign).
	campaignIDPattern = regexp.MustCompile(`^cmp_[0-9a-f]{16}$`)
	// routePattern is a route's path, as in the HTTP route table.
	routePattern = regexp.MustCompile(`^(/[a-z0-9._-]+|/\{[a-z_]+\})+$`)
)

// Invalid stands in the log for a value from outside that is not the
// identifier it should be.
const Invalid = "(invalid)"

// Subject returns subject if it names a well-formed identifier of its
// kind, and otherwise its kind with the Invalid marker, or Invalid alone:
// what an outsider typed into a URL or a body never reaches the log as
// text. Well-formed are device:<identity>, station:<identity>,
// token:<id>, product:<slug>, batch:<name>, address:<canonical IP> (or
// address:other, address:invalid, the summaries of refused requests), a
// route path, and a bare device identity (the onboarding protocol files
// its events under the identity itself).
func Subject(subject string) string {
	kind, value, found := strings.Cut(subject, ":")
	if !found {
		if routePattern.MatchString(subject) || isIdentity(subject) {
			return subject
		}
		return Invalid
	}
	var ok bool
	switch kind {
	case "device", "station":
		ok = isIdentity(value)
	case "token":
		ok = TokenIDPattern.MatchString(value)
	case "product":
		ok = ProductIDPattern.MatchString(value)
	case "batch":
		ok = BatchPattern.MatchString(value)
	case "address":
		ok = value == "other" || Source(value) == value
	case "campaign":
		ok = campaignIDPattern.MatchString(value)
	default:
		return Invalid
	}
	if !ok {
		return kind + ":" + Invalid
	}
	return subject
}

// Actor returns actor if it is one the log records (anonymous, system,
// token:<id>, device:<identity>), and Invalid otherwise.
func Actor(actor string) string {
	switch kind, value, _ := strings.Cut(actor, ":"); {
	case actor == "anonymous" || actor == "system":
		return actor
	case kind == "token" && TokenIDPattern.MatchString(value):
		return actor
	case kind == "device" && isIdentity(value):
		return actor
	}
	return Invalid
}

func isIdentity(v string) bool {
	_, err := identity.Parse(v)
	return err == nil
}

// Build is the one builder of audit events: it checks the actor and the
// subject (Actor, Subject), escapes and bounds every text field and
// canonicalises the remote address (Clean), and dates an undated event
// now. Every event is built by it, whether it is then written on its own
// (Recorder) or inside a store transaction with the change it records
// (the onboarding's CompleteOnboarding).
func Build(e store.AuditEvent, now time.Time) store.AuditEvent {
	e.Actor = Actor(e.Actor)
	e.Subject = Subject(e.Subject)
	if e.Time.IsZero() {
		e.Time = now
	}
	if !e.Time.IsZero() {
		e.Time = e.Time.UTC()
	}
	return Clean(e)
}
