package ota

import (
	"encoding/json"
	"strings"
	"testing"
)

func validJournal() journal {
	d := strings.Repeat("ab", 32)
	return journal{Format: journalFormat, CampaignID: "cmp_1", Step: stepDownload, Offset: 10,
		Image: ImageRef{Digest: d, Size: 100, Version: "2.0.2", SecurityCounter: 2, Path: PathFirmware + d}}
}

func TestParseJournalRules(t *testing.T) {
	good := validJournal()
	data, _ := json.Marshal(good)
	if _, err := parseJournal(data); err != nil {
		t.Fatalf("valid journal: %v", err)
	}
	for name, mut := range map[string]func(*journal){
		"offset past size":  func(j *journal) { j.Offset = 101 },
		"negative offset":   func(j *journal) { j.Offset = -1 },
		"unknown step":      func(j *journal) { j.Step = "dance" },
		"outcome early":     func(j *journal) { j.Outcome = &Report{CampaignID: "cmp_1", State: StateBooted} },
		"report no outcome": func(j *journal) { j.Step = stepReport },
		"foreign outcome": func(j *journal) {
			j.Step, j.Outcome = stepReport, &Report{CampaignID: "cmp_2", State: StateBooted}
		},
		"other format":  func(j *journal) { j.Format = "v0" },
		"acked pending": func(j *journal) { j.Acked = StatePending },
		"foreign path":  func(j *journal) { j.Image.Path = "/elsewhere" },
	} {
		j := validJournal()
		mut(&j)
		data, _ := json.Marshal(j)
		if _, err := parseJournal(data); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := parseJournal(append(data, []byte(" {}")...)); err == nil {
		t.Error("trailing data accepted")
	}
}

// FuzzParseJournal: the parser never panics, and what it accepts
// re-encodes to a journal it accepts again, unchanged.
func FuzzParseJournal(f *testing.F) {
	j := validJournal()
	seed, _ := json.Marshal(j)
	f.Add(seed)
	j.Step, j.Acked, j.Outcome = stepReport, StateInstalled, &Report{CampaignID: "cmp_1", State: StateRolledBack, Reason: "no-boot"}
	seed2, _ := json.Marshal(j)
	f.Add(seed2)
	f.Add([]byte(`{"format":"hallmark-ota-agent/v1"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := parseJournal(data)
		if err != nil {
			return
		}
		again, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		j2, err := parseJournal(again)
		if err != nil {
			t.Fatalf("re-encoded journal refused: %v", err)
		}
		if j2.Offset != j.Offset || j2.Step != j.Step || j2.Image != j.Image {
			t.Fatal("journal changed through a round trip")
		}
	})
}
