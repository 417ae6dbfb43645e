// Package pkcs11kms owns Hallmark's PKCS #11 key-manager backend: signing
// keys that live in a hardware security module (or SoftHSM2) as
// non-extractable token objects, named by RFC 7512 URIs under the
// "pkcs11:" scheme of package keys. It implements keys.Manager and
// keys.DeviceKeyGenerator; device keys for inject-class chips are made in
// the token and leave it only wrapped to a chip's P-256 transport key
// (keys.ECDHTransport), computed by the token.
//
// The backend needs cgo (github.com/miekg/pkcs11 loads the module with
// dlopen); a build with CGO_ENABLED=0 registers the scheme with an opener
// that says so (docs/decisions/0009-pkcs11-cgo.md). URIs, PIN sources and
// what the backend protects against are in docs/keystore.md.
package pkcs11kms

// SoftHSM2Paths are where Debian and other distributions install
// SoftHSM2's module; errors list them when no module is named.
var SoftHSM2Paths = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib64/pkcs11/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
}
