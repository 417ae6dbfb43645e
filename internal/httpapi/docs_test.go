package httpapi

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestDocsCoverAPI keeps docs/api.md in step with the code: every problem
// code with its status, every route (the onboarding ones may be in
// docs/protocol.md instead).
func TestDocsCoverAPI(t *testing.T) {
	api, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	protocol, _ := os.ReadFile("../../docs/protocol.md")
	for _, c := range ProblemCodes() {
		if row := fmt.Sprintf("| `%s` | %d |", c.Code, c.Status); !strings.Contains(string(api), row) {
			t.Errorf("docs/api.md lacks the row %q", row)
		}
	}
	e := newEnv(t)
	for _, rt := range e.srv.Routes() {
		if !strings.Contains(string(api), rt.Pattern()) && !strings.Contains(string(protocol), rt.Pattern()) {
			t.Errorf("docs do not describe %s", rt.Pattern())
		}
	}
}
