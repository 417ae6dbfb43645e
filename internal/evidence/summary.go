package evidence

import (
	"encoding/json"
	"fmt"
	"strings"
)

// summary counts what the export wrote, for SUMMARY.md.
type summary struct {
	cas, firmware, certs, events, statuses, audit int
	notes                                         []string
}

func writeJSONLine(b *strings.Builder, v any) error {
	line, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	b.Write(line)
	b.WriteByte('\n')
	return nil
}

// requirement is one row of SUMMARY.md's table.
type requirement struct {
	clause, text, evidence, status string
}

// requirements maps the CRA, ETSI EN 303 645 and IEC 62443-4-2 to the
// members: "supported" where the pack holds evidence a verifier checks,
// "partial" where it holds records only the platform attests, "not
// covered" where the evidence lives elsewhere.
var requirements = []requirement{
	{"CRA Annex I Part I (2)(d), EN 303 645 5.4, IEC 62443-4-2 CR 1.2", "Unique device identity, protected from unauthorised access",
		"devices/*/device.json (identity = SHA-256 of the enrolment key, checked); batches/*.json (station-signed manifest digest); stations/*.json; devices/*/cert-*.pem (chain to ca/ checked)", "supported"},
	{"CRA Annex I Part I (2)(f), EN 303 645 5.7-1, IEC 62443-4-2 EDR 3.14", "Secure boot: only authentic firmware runs",
		"products/*.json (firmware root hashes the boot ROM enforces); firmware/*.img (signatures checked against them); devices/*/status.json (boot result the device reported)", "partial: the boot result is the device's own report"},
	{"CRA Annex I Part I (2)(c), EN 303 645 5.3, IEC 62443-4-2 EDR 3.10", "Security updates: signed, anti-rollback",
		"firmware/*.json and *.img (version, security counter, signatures); devices/*/status.json (firmware version and counter in OTP)", "supported for images in the repository"},
	{"CRA Annex I Part II (1)-(8), EN 303 645 5.2", "Vulnerability handling: identify components, fix, disclose",
		"none: no SBOM, advisory or disclosure record is kept by the platform", "not covered"},
	{"CRA Annex I Part I (2)(d), EN 303 645 5.1, 5.5, IEC 62443-4-2 CR 1.5, CR 4.1", "Authentication and protection of data in transit",
		"devices/*/cert-*.pem and certificates.json (mutual-TLS credentials, revocation and supersession times)", "partial: shows credentials, not traffic"},
	{"CRA Annex I Part I (2)(l), EN 303 645 5.7, IEC 62443-4-2 CR 2.8, CR 3.9", "Record and monitor security-relevant events; tamper-evident logs",
		"audit/*.json (each entry with its chain proof to a signed checkpoint, checked); devices/*/events.jsonl (device event log)", "supported for audit entries; events.jsonl is platform-attested"},
	{"CRA Annex I Part I (2)(k), EN 303 645 5.11, IEC 62443-4-2 CR 4.2", "Secure deletion and decommissioning",
		"devices/*/device.json (state and reason); devices/*/events.jsonl; audit/*.json (the transition's audit entry)", "partial: records the decision, not the device's erasure"},
	{"CRA Annex I Part I (2)(b), EN 303 645 5.6", "Secure by default configuration, minimised attack surface",
		"devices/*/device.json (locks the station recorded: debug ports closed)", "partial"},
	{"CRA Annex I Part I (2)(e), EN 303 645 5.4 (storage), IEC 62443-4-2 CR 4.1", "Protection of stored data (confidentiality)",
		"device.json root_of_trust and injection (key never leaves the chip for puf/keygen)", "partial"},
}

// render writes SUMMARY.md.
func (s *summary) render(p Pack) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Evidence pack: %s %s\n\n", p.Scope, p.Subject)
	fmt.Fprintf(&b, "Created %s by the Hallmark platform; format %s.\n\n", p.Created.Format("2006-01-02T15:04:05Z"), p.Format)
	fmt.Fprintf(&b, "Devices: %d. CAs: %d. Firmware images: %d. Certificates: %d. Device events: %d. Status reports: %d. "+
		"Audit entries with chain proofs: %d.\n\n", p.Devices, s.cas, s.firmware, s.certs, s.events, s.statuses, s.audit)
	b.WriteString("Verify offline with the platform's published audit key (GET /v1/audit/key):\n\n" +
		"    hallmark evidence verify PACK --key audit.pem [--trust ca-bundle.pem]\n\n" +
		"It checks MANIFEST.sig over MANIFEST.json, every member's SHA-256, that no member is missing or extra, each device " +
		"identity against its key, each station identity against its key, each certificate's chain to ca/, each firmware " +
		"image's signatures against its product's root hashes, and each audit entry's proof to a checkpoint the audit key signed.\n\n")
	if len(s.notes) > 0 {
		b.WriteString("## Notes\n\n")
		for _, n := range s.notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		b.WriteString("\n")
	}
	b.WriteString("## Requirements and the evidence in this pack\n\n| Requirement | Clause | Evidence | Status |\n|---|---|---|---|\n")
	for _, r := range requirements {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.text, r.clause, r.evidence, r.status)
	}
	b.WriteString("\nNot in the pack: the station-signed manifest file itself (the platform keeps its SHA-256, which the station " +
		"signed, not the file: check the manufacturer's copy with `hallmark manifest verify` and compare the digest), the IEF " +
		"programmed at the factory, and anything the device did not report.\n")
	return []byte(b.String())
}
