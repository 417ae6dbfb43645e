//go:build !cgo

package democmd

// pkcs11Built: a build without cgo has no PKCS #11 (pkcs11kms says why).
const pkcs11Built = false
