package democmd

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/connector/mosquitto"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/pki"
)

// demoLifecycleLimit bounds each wait for the broker to apply a
// transition: the CRL synchroniser polls every demoSyncInterval.
const demoLifecycleLimit = 30 * time.Second

// demoLifecycle suspends one device, resumes it, then revokes it, and
// shows after each step what the broker does (its open connection
// dropped, its next handshake refused or accepted) and what the CRL and
// an OCSP answer say about its certificate.
func (c *demoCloud) demoLifecycle(ctx context.Context, s *cmdline.Streams, admin *httpapi.Client, d demoConnected) error {
	fmt.Fprintf(s.Out, "\nLifecycle of device %d (%s) at the broker, which reads the platform's CRL every %s:\n\n", d.num, d.id.Short(), demoSyncInterval)
	leaf, err := x509.ParseCertificate(d.cert.Certificate[0])
	if err != nil {
		return err
	}
	var serial [pki.SerialSize]byte
	leaf.SerialNumber.FillBytes(serial[:])
	tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TRANSITION\tSTATE\tOPEN CONNECTION\tNEW TLS HANDSHAKE\tCRL\tOCSP")
	for _, step := range []struct {
		name    string
		refused bool
	}{{"suspend", true}, {"resume", false}, {"revoke", true}} {
		row, err := c.demoTransition(ctx, admin, d, serial, step.name, step.refused)
		if err != nil {
			return fmt.Errorf("%s: %w", step.name, err)
		}
		fmt.Fprintln(tw, row)
	}
	tw.Flush()
	_, err = fmt.Fprintf(s.Out, "\nThe broker refused the suspended and the revoked device at the TLS handshake with its unexpired certificate;\n"+
		"the CRL (signed by the issuing CA, verified) and the OCSP responder (verified, with a nonce) said why.\n")
	return err
}

// demoTransition makes one admin transition and returns its table row.
func (c *demoCloud) demoTransition(ctx context.Context, admin *httpapi.Client, d demoConnected, serial [pki.SerialSize]byte, name string, refused bool) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, demoLifecycleLimit)
	defer cancel()
	var open *mosquitto.Session
	if refused {
		var err error
		if open, err = mosquitto.Connect(ctx, c.broker.DeviceURL(), d.cert, c.roots); err != nil {
			return "", fmt.Errorf("connect before: %w", err)
		}
		defer open.Close()
	}
	start := time.Now()
	dev, err := admin.TransitionDevice(ctx, d.id, name, "hallmark demo")
	if err != nil {
		return "", err
	}
	dropped := "-"
	if open != nil {
		select {
		case <-open.Done():
			dropped = "dropped after " + time.Since(start).Round(time.Millisecond).String()
		case <-ctx.Done():
			return "", errors.New("the broker kept the open connection")
		}
	}
	handshake, err := c.waitHandshake(ctx, d, refused, start)
	if err != nil {
		return "", err
	}
	crl, err := c.crlSays(ctx, serial)
	if err != nil {
		return "", err
	}
	ocsp, err := c.ocspSays(ctx, serial)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", name, dev.State, dropped, handshake, crl, ocsp), nil
}

// waitHandshake connects as the device until the broker refuses its
// certificate with a TLS alert (refused) or lets it connect and publish
// to its own topic.
func (c *demoCloud) waitHandshake(ctx context.Context, d demoConnected, refused bool, start time.Time) (string, error) {
	topic := "devices/" + d.id.String() + "/status"
	for {
		err := mosquitto.Publish(ctx, c.broker.DeviceURL(), d.cert, c.roots, topic, []byte(`{"status":"online"}`))
		took := time.Since(start).Round(time.Millisecond)
		switch {
		case refused && errors.Is(err, mosquitto.ErrCertificateRefused):
			return "refused after " + took.String(), nil
		case !refused && err == nil:
			return "accepted, published after " + took.String(), nil
		}
		// Anything else is the broker not there yet, including a refusal
		// that arrived as a reset rather than a TLS alert: with TLS 1.3
		// the broker may close before the client's CONNECT reaches it.
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("the broker did not apply the transition: last attempt %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// crlSays fetches the served CRL, verifies it and looks the serial up.
func (c *demoCloud) crlSays(ctx context.Context, serial [pki.SerialSize]byte) (string, error) {
	der, err := demoGet(ctx, c.crlURL, nil)
	if err != nil {
		return "", err
	}
	crl, err := pki.VerifyCRL(der, c.issuing)
	if err != nil {
		return "", err
	}
	if e, ok := crl.Lookup(serial); ok {
		return fmt.Sprintf("#%s lists it (%s)", crl.Number, reasonName(e.Reason)), nil
	}
	return fmt.Sprintf("#%s does not list it", crl.Number), nil
}

// ocspSays asks the OCSP responder, with a nonce, and verifies the answer.
func (c *demoCloud) ocspSays(ctx context.Context, serial [pki.SerialSize]byte) (string, error) {
	nonce := make([]byte, 16)
	rand.Read(nonce)
	req, err := pki.CreateOCSPRequest(c.issuing, [][pki.SerialSize]byte{serial}, crypto.SHA256, nonce)
	if err != nil {
		return "", err
	}
	der, err := demoGet(ctx, c.ocspURL, req)
	if err != nil {
		return "", err
	}
	resp, err := pki.VerifyOCSPResponse(der, c.issuing.Raw, time.Now(), nonce)
	if err != nil {
		return "", err
	}
	if len(resp.Responses) != 1 {
		return "", fmt.Errorf("OCSP: %d answers to one question", len(resp.Responses))
	}
	r := resp.Responses[0]
	if r.Status == pki.OCSPRevoked {
		return fmt.Sprintf("revoked (%s)", reasonName(r.Reason)), nil
	}
	return r.Status.String(), nil
}

// demoGet GETs url, or POSTs an OCSP request to it.
func demoGet(ctx context.Context, url string, ocspRequest []byte) ([]byte, error) {
	method, body := http.MethodGet, io.Reader(nil)
	if ocspRequest != nil {
		method, body = http.MethodPost, bytes.NewReader(ocspRequest)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	if ocspRequest != nil {
		req.Header.Set("Content-Type", "application/ocsp-request")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %s", method, url, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, pki.MaxCRLDER))
}

func reasonName(r int) string {
	switch r {
	case pki.ReasonKeyCompromise:
		return "keyCompromise"
	case pki.ReasonCessationOfOperation:
		return "cessationOfOperation"
	case pki.ReasonCertificateHold:
		return "certificateHold"
	case pki.ReasonSuperseded:
		return "superseded"
	}
	return fmt.Sprintf("reason %d", r)
}
