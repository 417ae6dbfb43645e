package pki

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"time"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// maxOCSPResponseCerts bounds the certificates a response may carry: a
// delegated responder needs one.
const maxOCSPResponseCerts = 4

// OCSPRefusedError is the error for a response whose status is not
// successful. It matches ErrOCSPRefused with errors.Is.
type OCSPRefusedError struct {
	Status OCSPResponseStatus
}

func (e *OCSPRefusedError) Error() string {
	return fmt.Sprintf("%v: %v", ErrOCSPRefused, e.Status)
}

// Is makes errors.Is(err, ErrOCSPRefused) true.
func (e *OCSPRefusedError) Is(target error) bool { return target == ErrOCSPRefused }

// OCSPResponse is a verified OCSP response.
type OCSPResponse struct {
	ProducedAt time.Time
	Responses  []OCSPSingleResponse
	// Nonce is the nonce the response echoes, nil if none.
	Nonce []byte
	// Signer is the certificate whose key signed the response: the
	// delegated responder's, or the issuer's.
	Signer *x509.Certificate
}

// VerifyOCSPResponse parses a DER OCSPResponse about certificates of
// issuerDER and checks it at now, for every sigalg suite (crypto/x509 and
// golang.org/x/crypto/ocsp cannot check ML-DSA): the response is a
// successful id-pkix-ocsp-basic; it is signed, with the signer's suite, by
// the issuer itself or by a delegated responder it carries that the issuer
// signed, that has id-kp-OCSPSigning and is valid at now; every CertID
// names issuerDER; no thisUpdate lies in the future nor nextUpdate in the
// past (ClockSkew allowed); and, when nonce is not nil, the response echoes
// it. Errors wrap ErrMalformedOCSPResponse, ErrOCSPRefused (as
// *OCSPRefusedError), ErrUntrusted, ErrExpired or ErrOCSPNonceMismatch.
func VerifyOCSPResponse(der, issuerDER []byte, now time.Time, nonce []byte) (*OCSPResponse, error) {
	issuer, err := parseCert(issuerDER)
	if err != nil {
		return nil, fmt.Errorf("verify OCSP response: issuer: %w", err)
	}
	basic, err := parseOCSPBasic(der)
	if err != nil {
		return nil, err
	}
	var data ocspResponseDataASN
	if err := ocspUnmarshal(basic.TBS.FullBytes, &data); err != nil || data.Version != 0 {
		return nil, fmt.Errorf("%w: responseData: version %d, %v", ErrMalformedOCSPResponse, data.Version, err)
	}
	resp, err := parseResponseData(&data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedOCSPResponse, err)
	}
	signer, err := findOCSPSigner(data.ResponderID, basic.Certs, issuer, now)
	if err != nil {
		return nil, err
	}
	resp.Signer = signer.Certificate
	if err := checkOCSPSignature(basic, signer); err != nil {
		return nil, err
	}
	if err := checkOCSPContent(resp, issuer, now, nonce); err != nil {
		return nil, err
	}
	return resp, nil
}

// parseOCSPBasic returns the BasicOCSPResponse of a successful response.
func parseOCSPBasic(der []byte) (*ocspBasicResponseASN, error) {
	if len(der) > MaxOCSPResponseSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrMalformedOCSPResponse, len(der), MaxOCSPResponseSize)
	}
	var outer ocspResponseASN
	if err := ocspUnmarshal(der, &outer); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedOCSPResponse, err)
	}
	if status := OCSPResponseStatus(outer.Status); status != OCSPSuccessful {
		return nil, &OCSPRefusedError{Status: status}
	}
	if !outer.Bytes.ResponseType.Equal(oidOCSPBasic) {
		return nil, fmt.Errorf("%w: response type %v, want id-pkix-ocsp-basic", ErrMalformedOCSPResponse, outer.Bytes.ResponseType)
	}
	var basic ocspBasicResponseASN
	if err := ocspUnmarshal(outer.Bytes.Response, &basic); err != nil {
		return nil, fmt.Errorf("%w: basic response: %v", ErrMalformedOCSPResponse, err)
	}
	if len(basic.Certs) > maxOCSPResponseCerts {
		return nil, fmt.Errorf("%w: %d certificates, at most %d", ErrMalformedOCSPResponse, len(basic.Certs), maxOCSPResponseCerts)
	}
	if len(basic.SignatureAlgorithm.Parameters.FullBytes) != 0 || basic.Signature.BitLength%8 != 0 {
		return nil, fmt.Errorf("%w: signature algorithm with parameters or a partial-byte signature", ErrMalformedOCSPResponse)
	}
	return &basic, nil
}

func parseResponseData(data *ocspResponseDataASN) (*OCSPResponse, error) {
	if n := len(data.Responses); n == 0 || n > MaxOCSPRequests {
		return nil, fmt.Errorf("%d responses, want 1 to %d", n, MaxOCSPRequests)
	}
	resp := &OCSPResponse{ProducedAt: data.ProducedAt}
	for i, s := range data.Responses {
		single, err := parseSingleResponse(s)
		if err != nil {
			return nil, fmt.Errorf("response %d: %w", i, err)
		}
		resp.Responses = append(resp.Responses, single)
	}
	nonce, err := ocspNonce(data.Extensions, true)
	if err != nil {
		return nil, err
	}
	resp.Nonce = nonce
	return resp, nil
}

func parseSingleResponse(s ocspSingleResponseASN) (OCSPSingleResponse, error) {
	id, err := parseCertID(s.CertID.FullBytes)
	if err != nil {
		return OCSPSingleResponse{}, err
	}
	if _, err := ocspNonce(s.Extensions, false); err != nil {
		return OCSPSingleResponse{}, err
	}
	out := OCSPSingleResponse{CertID: id, ThisUpdate: s.ThisUpdate, NextUpdate: s.NextUpdate}
	st := s.Status
	if st.Class != asn1.ClassContextSpecific {
		return out, errors.New("certStatus is not a context-specific tag")
	}
	switch {
	case st.Tag == 0 && !st.IsCompound && len(st.Bytes) == 0:
		out.Status = OCSPGood
	case st.Tag == 2 && !st.IsCompound && len(st.Bytes) == 0:
		out.Status = OCSPUnknown
	case st.Tag == 1 && st.IsCompound:
		// [1] IMPLICIT RevokedInfo: give the contents their SEQUENCE tag
		// back to decode them.
		seq, err := asn1.Marshal(asn1.RawValue{Tag: asn1.TagSequence, IsCompound: true, Bytes: st.Bytes})
		if err != nil {
			return out, err
		}
		var info ocspRevokedInfoASN
		if err := ocspUnmarshal(seq, &info); err != nil {
			return out, fmt.Errorf("revokedInfo: %w", err)
		}
		if !ocspValidReason(int(info.Reason)) {
			return out, fmt.Errorf("revocation reason %d", info.Reason)
		}
		out.Status, out.RevokedAt, out.Reason = OCSPRevoked, info.RevocationTime, int(info.Reason)
	default:
		return out, fmt.Errorf("certStatus [%d] is not good, revoked or unknown", st.Tag)
	}
	return out, nil
}

// findOCSPSigner resolves the responder ID to the issuer itself or to a
// delegated responder among certs, checked against issuer.
func findOCSPSigner(id asn1.RawValue, certs []asn1.RawValue, issuer *parsedCert, now time.Time) (*parsedCert, error) {
	if id.Class != asn1.ClassContextSpecific || !id.IsCompound || (id.Tag != 1 && id.Tag != 2) {
		return nil, fmt.Errorf("%w: responderID is neither byName nor byKey", ErrMalformedOCSPResponse)
	}
	names := func(c *parsedCert) bool {
		if id.Tag == 1 {
			return bytes.Equal(id.Bytes, c.RawSubject)
		}
		want, err := ocspResponderKeyID(c.RawSubjectPublicKeyInfo)
		return err == nil && bytes.Equal(want.Bytes, id.Bytes)
	}
	if names(issuer) {
		return issuer, nil
	}
	for i, raw := range certs {
		c, err := parseCert(raw.FullBytes)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate %d: %w", ErrMalformedOCSPResponse, i, err)
		}
		if !names(c) {
			continue
		}
		if err := checkDelegatedResponder(c, issuer); err != nil {
			return nil, err
		}
		if now.Before(c.NotBefore) || now.After(c.NotAfter) {
			return nil, fmt.Errorf("%w: OCSP responder %q is valid from %s to %s", ErrExpired, c.Subject.CommonName, c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339))
		}
		return c, nil
	}
	return nil, fmt.Errorf("%w: the response is signed neither by the issuer nor by a responder it carries", ErrUntrusted)
}

// checkOCSPSignature checks the signature with the signer's key and
// suite: the algorithm must be that suite's, as for certificates.
func checkOCSPSignature(basic *ocspBasicResponseASN, signer *parsedCert) error {
	suite, err := sigalg.SuiteOf(signer.PublicKey)
	if err != nil {
		return fmt.Errorf("%w: OCSP signer key: %w", ErrUntrusted, err)
	}
	if !basic.SignatureAlgorithm.Algorithm.Equal(suite.OID()) {
		return fmt.Errorf("%w: OCSP signature algorithm %s does not match the signer's %s key", ErrUntrusted, basic.SignatureAlgorithm.Algorithm, suite.ID())
	}
	if err := suite.Verify(signer.PublicKey, basic.TBS.FullBytes, basic.Signature.Bytes); err != nil {
		return fmt.Errorf("%w: OCSP response signature: %w", ErrUntrusted, err)
	}
	return nil
}

func checkOCSPContent(resp *OCSPResponse, issuer *parsedCert, now time.Time, nonce []byte) error {
	hashes, err := ocspIssuerHashes(issuer.Certificate)
	if err != nil {
		return err
	}
	for i, r := range resp.Responses {
		if !ocspMatchesIssuer(r.CertID, hashes) {
			return fmt.Errorf("%w: response %d is about a certificate of another issuer", ErrUntrusted, i)
		}
		if r.ThisUpdate.After(now.Add(ClockSkew)) {
			return fmt.Errorf("%w: response %d: thisUpdate %s is in the future", ErrExpired, i, r.ThisUpdate.Format(time.RFC3339))
		}
		if !r.NextUpdate.IsZero() && r.NextUpdate.Before(now.Add(-ClockSkew)) {
			return fmt.Errorf("%w: response %d: nextUpdate %s has passed", ErrExpired, i, r.NextUpdate.Format(time.RFC3339))
		}
	}
	if nonce != nil && !bytes.Equal(nonce, resp.Nonce) {
		return ErrOCSPNonceMismatch
	}
	return nil
}
