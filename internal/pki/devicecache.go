package pki

import (
	"crypto/sha256"
	"crypto/x509"
	"sync"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
)

// Verified device certificates. A device authenticates every request of
// its mutual-TLS connection with the same certificate, and crypto/tls
// leaves the chain to VerifyDevice (it cannot check an ML-DSA CA's
// signature): verifying the chain again on each of a migrating device's
// seven requests was 12 % of the server's CPU (docs/performance.md,
// "profile and what was cut"). The outcome of a verification depends only
// on the leaf's bytes, on this CA's root and issuing certificates (fixed
// for the CA's life) and on the time, so a successful one is remembered
// by the SHA-256 of the leaf, with the window in which every certificate
// of the path is valid; a later call inside that window gets the same
// answer without the signature checks. Failures are not remembered.
// Revocation, suspension and supersession are not VerifyDevice's to
// decide (the onboarding service reads the device's standing from the
// store on every request), so nothing here can let a refused device in.

// verifiedCacheSize bounds the remembered verifications: the devices that
// made requests lately, not the fleet. Two generations of half the size
// each; a full current generation becomes the previous one, so the
// oldest half is dropped at once and memory stays bounded.
const verifiedCacheSize = 1024

type verifiedLeaf struct {
	leaf                *x509.Certificate
	id                  identity.ID
	notBefore, notAfter time.Time
}

type verifiedCache struct {
	mu         sync.Mutex
	cur, older map[[sha256.Size]byte]verifiedLeaf
}

// get returns the verification remembered for key if now is inside its
// window.
func (c *verifiedCache) get(key [sha256.Size]byte, now time.Time) (verifiedLeaf, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.cur[key]
	if !ok {
		if v, ok = c.older[key]; ok {
			c.putLocked(key, v)
		}
	}
	if !ok || now.Before(v.notBefore) || now.After(v.notAfter) {
		return verifiedLeaf{}, false
	}
	return v, true
}

func (c *verifiedCache) put(key [sha256.Size]byte, v verifiedLeaf) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(key, v)
}

func (c *verifiedCache) putLocked(key [sha256.Size]byte, v verifiedLeaf) {
	if c.cur == nil || len(c.cur) >= verifiedCacheSize/2 {
		c.older, c.cur = c.cur, make(map[[sha256.Size]byte]verifiedLeaf, verifiedCacheSize/2)
	}
	c.cur[key] = v
}

// validWindow is the span in which every certificate of path is within
// its validity period, as checkCommon tests it.
func validWindow(path ...*x509.Certificate) (notBefore, notAfter time.Time) {
	for i, c := range path {
		if i == 0 || c.NotBefore.After(notBefore) {
			notBefore = c.NotBefore
		}
		if i == 0 || c.NotAfter.Before(notAfter) {
			notAfter = c.NotAfter
		}
	}
	return notBefore, notAfter
}
