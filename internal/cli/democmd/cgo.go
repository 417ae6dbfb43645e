//go:build cgo

package democmd

// pkcs11Built says this build can load a PKCS #11 module (pkcs11kms needs
// cgo), which --hsm checks before it starts.
const pkcs11Built = true
