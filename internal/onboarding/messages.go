// Package onboarding owns Hallmark's onboarding protocol: the messages a
// device and the platform exchange, the transcript the device signs, the
// server-side Service that checks a proof and issues credentials, the
// device-side Client and its one "onboard this device" sequence
// (OnboardDevice). It knows no transport, store or PKI: the Service keeps
// its records through the narrow State interfaces it declares (bound to
// the platform's store by onboarding/onboardstore) and signs through an
// Issuer (onboarding/onboardpki); the Client talks to a Transport,
// bound to HTTPS in internal/httpapi and to a Service in the same process
// by InProcess, so the real client runs against the real service in
// memory. docs/protocol.md specifies the exchange.
package onboarding

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
)

// ProofContext domain-separates the onboarding proof from every other
// signature an enrolment key makes (the factory proof, firmware, ...).
const ProofContext = "hallmark onboarding proof v1"

// Protocol limits.
const (
	ChallengeIDSize = 16
	NonceSize       = 32
	// ChallengeTTL is how long a challenge can be answered.
	ChallengeTTL = 60 * time.Second
	// MaxCSR and MaxSignature bound the fields of a proof; an ML-DSA-87
	// CSR is under 8 KiB and its signature 4,627 bytes.
	MaxCSR       = 16 << 10
	MaxSignature = 8 << 10
	// MaxServerName bounds the server name bound into the transcript.
	MaxServerName = 255
)

// ChallengeRequest opens an onboarding: the device offers its identity.
type ChallengeRequest struct {
	Identity identity.ID `json:"identity"`
}

// ChallengeResponse is the server's challenge. It is the same for an
// unknown identity as for a registered one.
type ChallengeResponse struct {
	ChallengeID string    `json:"challenge_id"` // 32 lowercase hex characters
	Nonce       []byte    `json:"nonce"`        // NonceSize bytes, base64
	ServerName  string    `json:"server_name"`
	Context     string    `json:"context"` // ProofContext
	ExpiresAt   time.Time `json:"expires_at"`
}

// ProofRequest answers a challenge: a signature by the enrolment key over
// Transcript, and a PKCS #10 request for the device's operational key.
type ProofRequest struct {
	ChallengeID string      `json:"challenge_id"`
	Identity    identity.ID `json:"identity"`
	CSR         []byte      `json:"csr"`       // DER, base64
	Signature   []byte      `json:"signature"` // base64
}

// RenewRequest asks for a new certificate over mutual TLS.
type RenewRequest struct {
	CSR []byte `json:"csr"`
}

// Credentials are what an onboarded device receives.
type Credentials struct {
	Identity         identity.ID `json:"identity"`
	CertificateChain []string    `json:"certificate_chain"` // PEM: leaf, then issuing CA
	TrustBundle      string      `json:"trust_bundle"`      // PEM: root CA
	CloudEndpoint    string      `json:"cloud_endpoint"`
	NotAfter         time.Time   `json:"not_after"`
	// RenewAfter is when the device should renew the certificate: the
	// start of its product's renewal window, before which a renewal is
	// refused (renewal-not-due), or, for a product without one, two
	// thirds into the certificate's validity (docs/protocol.md).
	RenewAfter time.Time `json:"renew_after"`
}

// Transcript is what the device signs, after identity.ProofMessage adds the
// context and the identity: the challenge ID and nonce (freshness, single
// use), the server name (the proof is for this platform only) and the
// SHA-256 of the CSR (the certificate request cannot be swapped).
func Transcript(challengeID [ChallengeIDSize]byte, nonce []byte, serverName string, csr []byte) []byte {
	csrHash := sha256.Sum256(csr)
	t := make([]byte, 0, ChallengeIDSize+len(nonce)+2+len(serverName)+len(csrHash))
	t = append(t, challengeID[:]...)
	t = append(t, nonce...)
	t = binary.BigEndian.AppendUint16(t, uint16(len(serverName)))
	t = append(t, serverName...)
	return append(t, csrHash[:]...)
}

// ProofMessage is the whole message the enrolment key signs.
func ProofMessage(challengeID [ChallengeIDSize]byte, nonce []byte, serverName string, csr []byte, id identity.ID) []byte {
	return identity.ProofMessage(ProofContext, Transcript(challengeID, nonce, serverName, csr), id)
}

// Bindings of a certificate request to its exchange (docs/protocol.md,
// "Certificate request"): the request carries one in its PKCS #9
// challengePassword, so the operational key signed something only this
// exchange has, and a request lifted from another exchange is refused.
const (
	// CSRBindingContext and RenewBindingContext domain-separate the two
	// bindings from each other and from every other hash.
	CSRBindingContext   = "hallmark csr binding v1"
	RenewBindingContext = "hallmark renewal binding v1"
	// ChannelBindingLabel is RFC 9266's tls-exporter label: a renewal's
	// request is bound to the TLS connection that carries it.
	ChannelBindingLabel = "EXPORTER-Channel-Binding"
	ChannelBindingSize  = 32
)

// CSRBinding is the challengePassword of a request answering a challenge:
// hex(SHA-256(CSRBindingContext ‖ 0x00 ‖ challenge ID ‖ nonce ‖
// u16(len(server name)) ‖ server name)).
func CSRBinding(challengeID [ChallengeIDSize]byte, nonce []byte, serverName string) string {
	h := sha256.New()
	h.Write([]byte(CSRBindingContext))
	h.Write([]byte{0})
	h.Write(challengeID[:])
	h.Write(nonce)
	h.Write(binary.BigEndian.AppendUint16(nil, uint16(len(serverName))))
	h.Write([]byte(serverName))
	return hex.EncodeToString(h.Sum(nil))
}

// RenewBinding is the challengePassword of a renewal's request:
// hex(SHA-256(RenewBindingContext ‖ 0x00 ‖ the connection's exporter value
// for ChannelBindingLabel, empty context, ChannelBindingSize bytes)).
func RenewBinding(channelBinding []byte) string {
	h := sha256.New()
	h.Write([]byte(RenewBindingContext))
	h.Write([]byte{0})
	h.Write(channelBinding)
	return hex.EncodeToString(h.Sum(nil))
}
