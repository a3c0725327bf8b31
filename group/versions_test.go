package group

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestVersionsMatchDocs checks that each API file NN_name.go registers key
// NN, and that the doc comment of the Coordinator method it defines states
// the registered range as "(vLO–HI)", so the docs, the table and the
// handlers cannot disagree.
func TestVersionsMatchDocs(t *testing.T) {
	files, err := filepath.Glob("[0-9][0-9]_*.go")
	if err != nil || len(files) != len(Versions) {
		t.Fatalf("%d API files, %d registered keys (%v)", len(files), len(Versions), err)
	}
	rangeRE := regexp.MustCompile(`\(v(\d+)–(\d+)\)`)
	for _, name := range files {
		key, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0])
		if err != nil {
			t.Fatal(err)
		}
		vr, ok := Versions[int16(key)]
		if !ok {
			t.Errorf("%s: key %d not registered", name, key)
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Recv == nil || !fd.Name.IsExported() || fd.Doc == nil {
				continue
			}
			m := rangeRE.FindStringSubmatch(fd.Doc.Text())
			if m == nil {
				t.Errorf("%s: %s's doc names no version range", name, fd.Name.Name)
				continue
			}
			found = true
			if got, want := m[1]+"–"+m[2], fmt.Sprintf("%d–%d", vr[0], vr[1]); got != want {
				t.Errorf("%s: %s's doc says v%s, registered v%s", name, fd.Name.Name, got, want)
			}
		}
		if !found {
			t.Errorf("%s: no documented Coordinator method", name)
		}
	}
}
