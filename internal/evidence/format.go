// Package evidence owns the evidence pack: its format (a deterministic tar
// archive whose last two members are a manifest of every other member's
// SHA-256 and the platform audit key's signature over it), its assembly
// from the registry and the audit chain, its signature, and its offline
// verification, which needs nothing but the pack and the published audit
// key. docs/evidence.md, "Evidence packs", says what each member proves.
package evidence

import (
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Format names this pack format in pack.json and MANIFEST.json.
const Format = "hallmark-evidence-pack/v1"

// SignatureContext precedes MANIFEST.json's bytes in the message the audit
// key signs: a pack signature never verifies as a checkpoint or any other
// Hallmark signature.
const SignatureContext = "hallmark evidence pack v1\x00"

// Member names with a fixed meaning.
const (
	MemberPack      = "pack.json"
	MemberAuditKey  = "keys/audit.pem"
	MemberSummary   = "SUMMARY.md"
	MemberManifest  = "MANIFEST.json"
	MemberSignature = "MANIFEST.sig"
)

// Limits of a pack, enforced when it is written and when it is read.
const (
	// MaxMembers bounds the members of one pack.
	MaxMembers = 200000
	// MaxMemberSize bounds one member; a firmware image is the largest.
	MaxMemberSize = 32 << 20
	// MaxSmallMember bounds every member that is not a firmware image:
	// the verifier holds one such member in memory at a time.
	MaxSmallMember = 4 << 20
	// MaxManifest bounds MANIFEST.json (about 150 bytes per member).
	MaxManifest = 40 << 20
	// MaxDevices bounds the devices of one pack: a larger product is
	// exported batch by batch. The assembler holds the set of their
	// subjects (about 100 bytes each) while it scans the audit chain.
	MaxDevices = 10000
	// MaxAuditPerDevice bounds the audit entries about one device.
	MaxAuditPerDevice = 1000
	// MaxFirmwarePerProduct bounds the firmware images of one product.
	MaxFirmwarePerProduct = 64
)

// ErrPack reports a pack that fails verification; the message names the
// member and what failed.
var ErrPack = errors.New("evidence pack invalid")

// ErrNotFound reports an export of a device, batch or product the
// registry does not hold.
var ErrNotFound = errors.New("not found")

// ErrRequest reports a request that names nothing an export can resolve:
// an unknown scope or a malformed identity.
var ErrRequest = errors.New("bad evidence request")

// ErrTooLarge reports an export over the pack's limits.
var ErrTooLarge = errors.New("too large for one evidence pack")

// memberName is the alphabet of member names: no "..", no absolute path,
// nothing a file system or a terminal would read differently.
var memberName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9][A-Za-z0-9._-]{0,127}){0,3}$`)

func checkName(name string) error {
	if !memberName.MatchString(name) {
		return fmt.Errorf("member name %q is not allowed", name)
	}
	return nil
}

// Manifest is MANIFEST.json: every other member in archive order.
type Manifest struct {
	Format  string   `json:"format"`
	Created string   `json:"created"` // RFC 3339, UTC
	KeyID   string   `json:"key_id"`  // chain.KeyID of the audit key
	Alg     string   `json:"alg"`
	Members []Member `json:"members"`
}

// Member is one member's entry in the manifest.
type Member struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Pack is pack.json: what the pack is about.
type Pack struct {
	Format  string    `json:"format"`
	Created time.Time `json:"created"`
	Scope   string    `json:"scope"` // device, batch, product
	Subject string    `json:"subject"`
	Devices int       `json:"devices"`
}

// Scope kinds.
const (
	ScopeDevice  = "device"
	ScopeBatch   = "batch"
	ScopeProduct = "product"
)

// Request names what to export.
type Request struct {
	Scope   string // ScopeDevice, ScopeBatch or ScopeProduct
	Subject string // the identity, batch name or product ID
}

// SignedMessage is what the audit key signs: SignatureContext, then the
// bytes of MANIFEST.json.
func SignedMessage(manifest []byte) []byte {
	return append([]byte(SignatureContext), manifest...)
}
