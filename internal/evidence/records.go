package evidence

import (
	"encoding/hex"
	"time"

	"github.com/hallmark-iot/hallmark/internal/audit/chain"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// The JSON members. Keys are DER, standard base64 ([]byte); hashes are
// lowercase hex; times RFC 3339 UTC.

// StationRecord is stations/<id>.json: the station as the platform
// registered it, whose key signed the batch manifests.
type StationRecord struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Algorithm string    `json:"algorithm"`
	PublicKey []byte    `json:"public_key"`
	CreatedAt time.Time `json:"created_at"`
}

// ProductRecord is products/<id>.json, with the firmware policy its
// devices' boot ROMs enforce.
type ProductRecord struct {
	ID                 string    `json:"id"`
	Name               string    `json:"name"`
	IssuingCA          string    `json:"issuing_ca"`
	MinFirmwareVersion string    `json:"min_firmware_version"`
	RequireLocked      bool      `json:"require_locked"`
	FirmwareRoots      []string  `json:"firmware_roots"`
	RetiredSlots       uint8     `json:"retired_slots"`
	ClassKey           string    `json:"class_key,omitempty"`
	CreatedAt          time.Time `json:"created_at"`
}

// BatchRecord is batches/<name>.json: the import of one station-signed
// manifest, named by the SHA-256 the station's signature covers.
type BatchRecord struct {
	ID             string    `json:"id"`
	Station        string    `json:"station"`
	Product        string    `json:"product"`
	ManifestDigest string    `json:"manifest_digest"`
	DeviceCount    int       `json:"device_count"`
	ImportedAt     time.Time `json:"imported_at"`
}

// DeviceRecord is devices/<id>/device.json: the registry's record of the
// device, its enrolment key and the manifest record's fields.
type DeviceRecord struct {
	Identity       string    `json:"identity"`
	Algorithm      string    `json:"algorithm"`
	PublicKey      []byte    `json:"public_key"`
	RootOfTrust    string    `json:"root_of_trust"`
	Injection      string    `json:"injection"`
	Locks          string    `json:"locks"`
	Batch          string    `json:"batch"`
	Station        string    `json:"station"`
	Product        string    `json:"product"`
	State          string    `json:"state"`
	CreatedAt      time.Time `json:"created_at"`
	OnboardedAt    time.Time `json:"onboarded_at,omitzero"`
	RevokedAt      time.Time `json:"revoked_at,omitzero"`
	StateChangedAt time.Time `json:"state_changed_at,omitzero"`
	StateReason    string    `json:"state_reason,omitempty"`
}

// CertificateRecord is one line of devices/<id>/certificates.json; the
// certificate itself is devices/<id>/cert-<serial>.pem.
type CertificateRecord struct {
	Serial           string    `json:"serial"`
	NotBefore        time.Time `json:"not_before"`
	NotAfter         time.Time `json:"not_after"`
	IssuedAt         time.Time `json:"issued_at"`
	RevokedAt        time.Time `json:"revoked_at,omitzero"`
	RevocationReason int       `json:"revocation_reason,omitempty"`
	SupersededAt     time.Time `json:"superseded_at,omitzero"`
}

// EventRecord is one line of devices/<id>/events.jsonl: the device event
// log (lifecycle transitions, renewals, monitoring findings).
type EventRecord struct {
	Seq    int64     `json:"seq"`
	Time   time.Time `json:"time"`
	Kind   string    `json:"kind"`
	Serial string    `json:"serial,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

// StatusRecord is devices/<id>/status.json: the device's latest status
// report.
type StatusRecord struct {
	ReceivedAt           time.Time `json:"received_at"`
	FirmwareVersion      string    `json:"firmware_version"`
	SecurityCounter      uint32    `json:"security_counter"`
	BootResult           string    `json:"boot_result"`
	EnrolmentAlgorithm   string    `json:"enrolment_algorithm"`
	OperationalAlgorithm string    `json:"operational_algorithm"`
	UptimeSeconds        int64     `json:"uptime_seconds"`
}

// FirmwareRecord is firmware/<digest>.json; the image file is
// firmware/<digest>.img.
type FirmwareRecord struct {
	Digest          string    `json:"digest"`
	Product         string    `json:"product"`
	Type            string    `json:"type"`
	Version         string    `json:"version"`
	SecurityCounter uint32    `json:"security_counter"`
	Size            int64     `json:"size"`
	Encrypted       bool      `json:"encrypted"`
	Signers         []string  `json:"signers"`
	UploadedAt      time.Time `json:"uploaded_at"`
	UploadedBy      string    `json:"uploaded_by"`
}

// ProofRecord is audit/<pos>.json: one audit entry and chain.Proof that a
// signed checkpoint covers it.
type ProofRecord struct {
	Pos        int64                `json:"pos"`
	Prev       string               `json:"prev"`
	EventSeq   int64                `json:"event_seq"`
	Event      chain.LineEvent      `json:"event"`
	Following  []string             `json:"following"`
	Checkpoint chain.LineCheckpoint `json:"checkpoint"`
}

func proofRecord(p chain.Proof) ProofRecord {
	e, c := p.Event, p.Checkpoint
	r := ProofRecord{Pos: p.Pos, Prev: hex.EncodeToString(p.Prev[:]), EventSeq: e.Seq,
		Event: chain.LineEvent{Time: e.Time.UTC(), Actor: e.Actor, Action: e.Action, Subject: e.Subject,
			Outcome: e.Outcome, Detail: e.Detail, RemoteAddr: e.RemoteAddr},
		Following: make([]string, len(p.Following)),
		Checkpoint: chain.LineCheckpoint{Seq: c.Seq, Head: hex.EncodeToString(c.Head[:]), First: c.First,
			Time: c.Time.UTC(), KeyID: c.KeyID, Alg: c.Alg, Signature: c.Signature}}
	for i, h := range p.Following {
		r.Following[i] = hex.EncodeToString(h[:])
	}
	return r
}

// proof turns the record back into a chain.Proof.
func (r ProofRecord) proof() (chain.Proof, error) {
	p := chain.Proof{Pos: r.Pos, Following: make([][32]byte, len(r.Following))}
	var err error
	if p.Prev, err = hash32(r.Prev); err != nil {
		return p, err
	}
	for i, s := range r.Following {
		if p.Following[i], err = hash32(s); err != nil {
			return p, err
		}
	}
	e := r.Event
	p.Event = store.AuditEvent{Seq: r.EventSeq, Time: e.Time.UTC(), Actor: e.Actor, Action: e.Action, Subject: e.Subject,
		Outcome: e.Outcome, Detail: e.Detail, RemoteAddr: e.RemoteAddr}
	c := r.Checkpoint
	head, err := hash32(c.Head)
	if err != nil {
		return p, err
	}
	p.Checkpoint = store.AuditCheckpoint{Seq: c.Seq, Head: head, First: c.First, Time: c.Time.UTC(), KeyID: c.KeyID, Alg: c.Alg, Signature: c.Signature}
	return p, nil
}

func hash32(s string) ([32]byte, error) {
	var h [32]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 || hex.EncodeToString(b) != s {
		return h, errBadHash
	}
	return [32]byte(b), nil
}
