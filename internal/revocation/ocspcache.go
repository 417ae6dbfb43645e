package revocation

import (
	"strings"
	"sync"
	"time"

	"github.com/hallmark-iot/hallmark/internal/pki"
)

// ocspCache keeps signed answers to requests without a nonce for
// OCSPConfig.CacheFor. Serving one again is safe: it is a signed
// statement that the status was so at its thisUpdate, which the client
// sees; it is only staler by at most CacheFor, the same bound a GET's
// max-age gives HTTP caches, and far within its nextUpdate. Requests with
// a nonce never use it, so a client that wants a fresh answer gets one.
type ocspCache struct {
	mu      sync.Mutex
	entries map[string]ocspCacheEntry
}

type ocspCacheEntry struct {
	der               []byte
	thisUpdate, until time.Time
}

// ocspCacheKey is the request's CertIDs, as sent: the answer echoes them.
func ocspCacheKey(req *pki.OCSPRequest) string {
	var b strings.Builder
	for _, id := range req.CertIDs {
		b.Write(id.Raw())
	}
	return b.String()
}

func (c *ocspCache) get(key string, now time.Time) (ocspCacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || !now.Before(e.until) {
		return ocspCacheEntry{}, false
	}
	return e, true
}

// put stores e; a full cache first drops expired answers, and everything
// if that is not enough, so memory stays bounded under any request mix.
func (c *ocspCache) put(key string, e ocspCacheEntry, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxOCSPCacheEntries {
		for k, old := range c.entries {
			if !now.Before(old.until) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxOCSPCacheEntries {
			clear(c.entries)
		}
	}
	c.entries[key] = e
}

func (c *ocspCache) purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
}
