package firmware

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"strings"
	"testing"
)

// TestEverySentinelHasAReason reads this package's source for every
// exported Err variable and checks that the reasons table names it, so a
// new refusal cannot ship without a code an update agent can report.
func TestEverySentinelHasAReason(t *testing.T) {
	fset := token.NewFileSet()
	declared := map[string]bool{}
	inTable := map[string]bool{}
	for _, file := range []string{"firmware.go", "reason.go"} {
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.ValueSpec:
				for _, name := range n.Names {
					if strings.HasPrefix(name.Name, "Err") {
						declared[name.Name] = true
					}
				}
			case *ast.CompositeLit:
				if len(n.Elts) == 2 {
					if id, ok := n.Elts[0].(*ast.Ident); ok {
						inTable[id.Name] = true
					}
				}
			}
			return true
		})
	}
	if len(declared) < 10 {
		t.Fatalf("found only %d sentinels; is the parse wrong?", len(declared))
	}
	for name := range declared {
		if !inTable[name] {
			t.Errorf("%s has no reason code", name)
		}
	}
	seen := map[string]bool{}
	for _, r := range reasons {
		if r.code == "" || seen[r.code] {
			t.Errorf("reason code %q empty or used twice", r.code)
		}
		seen[r.code] = true
		if got := ReasonCode(fmt.Errorf("boot: %w", r.err)); got != r.code {
			t.Errorf("ReasonCode(wrapped %v) = %q, want %q", r.err, got, r.code)
		}
	}
	if got := ReasonCode(fmt.Errorf("disk full")); got != "" {
		t.Errorf("ReasonCode of a foreign error = %q", got)
	}
}
