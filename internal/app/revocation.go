package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/revocation"
)

// Bounds of the plain-HTTP revocation listener. Its answers are small and
// signed; a client has no reason to be slow.
const (
	revocationHeaderTimeout = 10 * time.Second
	revocationWriteTimeout  = time.Minute // a 100,000-entry CRL is ~4.5 MB
	revocationIdleTimeout   = 2 * time.Minute
	revocationMaxHeader     = 8 << 10
	// revocationShutdown bounds the wait for requests in flight at Close.
	revocationShutdown = 5 * time.Second
)

// revocationServer publishes each CA's CRL and answers OCSP requests
// about its certificates, over plain HTTP.
type revocationServer struct {
	publishers []*revocation.Publisher // one per CA, the first CA's first
	ocsp       []*revocation.OCSPResponder
	server     *http.Server
	listener   net.Listener
	stop       context.CancelFunc
	done       chan struct{}
	stopOnce   sync.Once
}

// checkRevocation checks RevocationListen and RevocationBaseURL together:
// both or neither, the URL an http:// one. Certificates carrying a URL
// that nothing serves would send relying parties to nothing.
func (c *Config) checkRevocation() error {
	switch {
	case c.RevocationListen == "" && c.RevocationBaseURL == "":
		return nil
	case c.RevocationListen == "":
		return errors.New("serve: a revocation base URL needs a revocation listener (--revocation-listen) to serve what it names")
	case c.RevocationBaseURL == "":
		return errors.New("serve: the revocation listener needs the base URL certificates will carry (--revocation-base-url http://HOST:PORT)")
	}
	base, err := pki.CheckRevocationBaseURL(c.RevocationBaseURL)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	c.RevocationBaseURL = base
	return nil
}

// startRevocation publishes the first CRL, then serves it on
// RevocationListen and keeps it current until Close. Nothing happens
// without a listener.
func (p *Platform) startRevocation(ctx context.Context) error {
	if p.cfg.RevocationListen == "" {
		return nil
	}
	// One CRL and one OCSP responder per CA, at URLs of its own. With
	// several CAs each CRL keeps to its CA's certificates (the registry
	// lists them together); the first CA's responder keeps pki.OCSPPath,
	// the URL its certificates have always carried.
	cas := p.CAs.All()
	var certs revocation.CertificateStatusSource
	if len(cas) > 1 {
		certs = p.Store
	}
	rs := &revocationServer{done: make(chan struct{})}
	routes := revocation.Routes{MoreOCSP: map[string]http.Handler{}}
	for i, ca := range cas {
		pub, err := revocation.New(revocation.Config{CA: ca, Source: p.Store, Certificates: certs, Log: p.cfg.Log, Now: p.cfg.Now})
		if err != nil {
			return err
		}
		// A CRL before the first request, and a broken signer found at start.
		if _, err := pub.Refresh(ctx); err != nil {
			return fmt.Errorf("revocation: first CRL of CA %s: %w", ca.Name(), err)
		}
		// The responder signs with a delegated certificate whose key lives
		// beside the CA's, so the CA's key stays off the request path.
		ocsp, err := revocation.NewOCSPResponder(ctx, revocation.OCSPConfig{CA: ca, Keys: p.keys, Certificates: p.Store, Logger: p.cfg.Log,
			Now: p.cfg.Now, KeyName: ca.KeyName(pki.KeyOCSPResponder), Path: ca.OCSPPath()})
		if err != nil {
			return fmt.Errorf("revocation: OCSP responder of CA %s: %w", ca.Name(), err)
		}
		rs.publishers, rs.ocsp = append(rs.publishers, pub), append(rs.ocsp, ocsp)
		routes.CRLs = append(routes.CRLs, pub)
		if i == 0 {
			routes.OCSP = ocsp
		} else {
			routes.MoreOCSP[ca.OCSPPath()] = ocsp
		}
	}
	handler, err := revocation.NewMux(routes)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", p.cfg.RevocationListen)
	if err != nil {
		return fmt.Errorf("revocation listener: %w", err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	rs.listener, rs.stop = ln, stop
	rs.server = &http.Server{Handler: handler, ReadHeaderTimeout: revocationHeaderTimeout, ReadTimeout: revocationHeaderTimeout,
		WriteTimeout: revocationWriteTimeout, IdleTimeout: revocationIdleTimeout, MaxHeaderBytes: revocationMaxHeader}
	p.revocation = rs
	go func() {
		defer close(rs.done)
		served := make(chan struct{})
		go func() { defer close(served); _ = rs.server.Serve(ln) }()
		var wg sync.WaitGroup
		for _, pub := range rs.publishers {
			wg.Go(func() { _ = pub.Run(runCtx) })
		}
		wg.Wait()
		<-served
	}()
	for _, ca := range cas {
		p.cfg.Log.Info("serving revocation", "url", p.RevocationURL(), "ca", ca.Name(), "crl", ca.CRLURL(), "ocsp", ca.OCSPURL())
	}
	return nil
}

// stopRevocation stops the listener, letting requests in flight finish
// for a few seconds, and the CRL publisher.
func (p *Platform) stopRevocation() {
	rs := p.revocation
	if rs == nil {
		return
	}
	rs.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), revocationShutdown)
		defer cancel()
		if err := rs.server.Shutdown(ctx); err != nil {
			rs.server.Close()
		}
		rs.stop()
		<-rs.done
	})
}

// RevocationURL is the revocation listener's URL with the port actually
// bound ("" when it is off). Certificates carry RevocationBaseURL, which a
// proxy or DNS name may put in front of it.
func (p *Platform) RevocationURL() string {
	if p.revocation == nil {
		return ""
	}
	addr := p.revocation.listener.Addr().(*net.TCPAddr)
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(addr.Port))
}

// NotifyRevocation tells the CRL publisher that certificates were revoked,
// put on hold or released, so that it regenerates the CRL at once rather
// than at its next poll, and empties the OCSP responder's short cache. It
// does nothing when revocation is not served.
func (p *Platform) NotifyRevocation() {
	if p.revoked != nil {
		p.revoked.Notify() // the device poll's list of revoked serials
	}
	if rs := p.revocation; rs != nil {
		for _, pub := range rs.publishers {
			pub.Notify()
		}
		for _, o := range rs.ocsp {
			o.Purge()
		}
	}
}
