// Package tpm owns Hallmark's use of a TPM 2.0: where the TPM is (a Linux
// device node such as /dev/tpmrm0, or the swtpm simulator on a TCP or Unix
// socket), the connection to it, and the signing keys it holds for a
// TPM-class device. A key is an ECDSA P-256 key created inside the TPM
// under its storage root key (SRK) with fixedTPM and fixedParent set, so
// the TPM never lets its private part out in the clear; what Hallmark
// stores is the key's public area and its private area as the TPM wraps
// it under the SRK, which only that TPM can load (KeyBlob).
//
// TPM 2.0 as shipped in gateways signs with RSA and ECDSA over NIST
// curves; it has no Ed25519 and no ML-DSA, so a TPM key is always
// ECDSA P-256.
//
// Every operation opens its own connection and flushes what it loaded
// before it returns, so nothing is left in the TPM's few transient object
// slots, and a simulator (which serves one connection at a time and has
// no resource manager) is never held by an idle process.
package tpm

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Errors callers branch on.
var (
	ErrAddress     = errors.New("invalid TPM address")
	ErrUnreachable = errors.New("TPM unreachable")
	ErrKeyBlob     = errors.New("invalid TPM key blob")
	ErrWrongTPM    = errors.New("key blob does not belong to this TPM")
	ErrResponse    = errors.New("malformed TPM response")
)

// Kind is how Hallmark reaches a TPM.
type Kind string

// The transports.
const (
	// Device is a character device: /dev/tpmrm0 (the kernel's resource
	// manager, the one to use) or /dev/tpm0.
	Device Kind = "device"
	// TCP is swtpm's server (command) port: raw TPM 2.0 commands, the
	// same bytes as on the device node.
	TCP Kind = "tcp"
	// Unix is swtpm's server socket with --server type=unixio.
	Unix Kind = "unix"
)

// Address names a TPM. Its text form is one of
//
//	/dev/tpmrm0                 a device node (any absolute path)
//	tcp://127.0.0.1:2321        swtpm --server type=tcp,port=2321
//	unix:///run/swtpm/sock      swtpm --server type=unixio,path=...
//
// swtpm's control port is not used: start swtpm with
// --flags not-need-init,startup-clear so it is powered on, and Hallmark
// sends TPM2_Startup itself, which a started TPM answers with
// TPM_RC_INITIALIZE (accepted).
type Address struct {
	Kind Kind
	// Target is the device path, host:port or socket path.
	Target string
}

// MaxAddress bounds an address's text.
const MaxAddress = 1024

// ParseAddress reads an address in its text form.
func ParseAddress(s string) (Address, error) {
	if s == "" {
		return Address{}, fmt.Errorf("%w: empty (want /dev/tpmrm0, tcp://HOST:PORT or unix:///PATH)", ErrAddress)
	}
	if len(s) > MaxAddress {
		return Address{}, fmt.Errorf("%w: longer than %d bytes", ErrAddress, MaxAddress)
	}
	if strings.ContainsAny(s, "\x00\n\r") {
		return Address{}, fmt.Errorf("%w: control character", ErrAddress)
	}
	switch {
	case strings.HasPrefix(s, "tcp://"):
		hostPort := strings.TrimPrefix(s, "tcp://")
		host, port, err := net.SplitHostPort(hostPort)
		if err != nil || host == "" || strings.ContainsAny(host, "/?#@") {
			return Address{}, fmt.Errorf("%w: %q: want tcp://HOST:PORT", ErrAddress, s)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return Address{}, fmt.Errorf("%w: %q: port must be 1 to 65535", ErrAddress, s)
		}
		return Address{Kind: TCP, Target: hostPort}, nil
	case strings.HasPrefix(s, "unix://"):
		path := strings.TrimPrefix(s, "unix://")
		if !strings.HasPrefix(path, "/") {
			return Address{}, fmt.Errorf("%w: %q: want unix:///ABSOLUTE/PATH", ErrAddress, s)
		}
		return Address{Kind: Unix, Target: path}, nil
	case strings.HasPrefix(s, "/"):
		return Address{Kind: Device, Target: s}, nil
	}
	return Address{}, fmt.Errorf("%w: %q: want a device path such as /dev/tpmrm0, tcp://HOST:PORT or unix:///PATH", ErrAddress, s)
}

// String returns the text form ParseAddress reads.
func (a Address) String() string {
	switch a.Kind {
	case TCP:
		return "tcp://" + a.Target
	case Unix:
		return "unix://" + a.Target
	}
	return a.Target
}
