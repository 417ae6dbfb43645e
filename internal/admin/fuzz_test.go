package admin

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// FuzzPeekStation drives the manifest upload's header peek: it never
// panics, never consumes input, and accepts only a first line naming a
// well-formed identity.
func FuzzPeekStation(f *testing.F) {
	station := deriveKey(f, sigalg.Ed25519, "station", 0)
	f.Add(writeManifest(f, station, "seed", "seed", 2))
	f.Add([]byte(`{"station":"` + strings.Repeat("0", 64) + `"}` + "\n"))
	f.Add([]byte("{}\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(data), 16<<10)
		id, err := PeekStation(br)
		rest, _ := br.Peek(len(data))
		if len(data) <= 16<<10 && !bytes.Equal(rest, data) {
			t.Fatal("peek consumed input")
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeManifestInvalid {
				t.Fatalf("refusal %v", err)
			}
			return
		}
		line, _, _ := bytes.Cut(data, []byte("\n"))
		if !bytes.Contains(line, []byte(id.String())) && !bytes.Contains(bytes.ToLower(line), []byte(`\u`)) {
			t.Fatalf("station %s not in the first line %q", id, line)
		}
	})
}
