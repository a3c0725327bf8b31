package broker

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/easel-io/easel/group"
)

// tableRow is one API of a "Supported APIs" table: its key, versions and
// where it was found.
type tableRow struct {
	key, lo, hi int16
	line        int
}

var (
	keyRe     = regexp.MustCompile(`^\s*([A-Za-z]+)\s*\((\d+)\)\s*$`)
	versionRe = regexp.MustCompile(`^\s*(\d+)\s*(?:[–-]\s*(\d+))?\s*$`)
)

// parseAPITable reads the markdown table of supported APIs from lines
// (after stripping prefix from each): rows "| Name (key), Name (key) |
// lo–hi, lo–hi | notes |", one version range per key. It stops at the
// first line after the table.
func parseAPITable(t *testing.T, file string, lines []string, first int, prefix string) map[int16]tableRow {
	t.Helper()
	rows := map[int16]tableRow{}
	inTable := false
	for i := first; i < len(lines); i++ {
		l, ok := strings.CutPrefix(lines[i], prefix)
		l = strings.TrimSpace(l)
		if !ok || !strings.HasPrefix(l, "|") {
			if inTable {
				break
			}
			continue
		}
		inTable = true
		cells := strings.Split(strings.Trim(l, "|"), "|")
		if len(cells) < 2 || strings.Contains(cells[0], "API (key)") || strings.HasPrefix(strings.TrimSpace(cells[0]), "---") {
			continue // header or separator
		}
		names := strings.Split(cells[0], ",")
		versions := strings.Split(cells[1], ",")
		if len(names) != len(versions) {
			t.Errorf("%s:%d: %d APIs but %d version ranges: %q", file, i+1, len(names), len(versions), l)
			continue
		}
		for j := range names {
			km := keyRe.FindStringSubmatch(names[j])
			vm := versionRe.FindStringSubmatch(versions[j])
			if km == nil || vm == nil {
				t.Errorf("%s:%d: cannot read %q / %q as \"Name (key)\" / \"lo–hi\"", file, i+1, names[j], versions[j])
				continue
			}
			key, _ := strconv.Atoi(km[2])
			lo, _ := strconv.Atoi(vm[1])
			hi := lo
			if vm[2] != "" {
				hi, _ = strconv.Atoi(vm[2])
			}
			if name := kmsg.NameForKey(int16(key)); !strings.EqualFold(name, km[1]) {
				t.Errorf("%s:%d: key %d is %s, not %s", file, i+1, key, name, km[1])
			}
			if prev, dup := rows[int16(key)]; dup {
				t.Errorf("%s:%d: key %d listed again (first on line %d)", file, i+1, key, prev.line)
			}
			rows[int16(key)] = tableRow{key: int16(key), lo: int16(lo), hi: int16(hi), line: i + 1}
		}
	}
	return rows
}

// checkAPITable compares a parsed table with the registry and reports each
// line to fix.
func checkAPITable(t *testing.T, file string, rows map[int16]tableRow) {
	t.Helper()
	if len(rows) == 0 {
		t.Errorf("%s: no table of supported APIs found", file)
		return
	}
	for _, a := range apiList() {
		want := fmt.Sprintf("%s (%d) | %d–%d", kmsg.NameForKey(a.key), a.key, a.min, a.max)
		r, ok := rows[a.key]
		switch {
		case !ok:
			t.Errorf("%s: the table has no row for %s (%d); add \"| %s | notes |\"", file, kmsg.NameForKey(a.key), a.key, want)
		case r.lo != a.min || r.hi != a.max:
			t.Errorf("%s:%d: %s (%d) says %d–%d; the broker serves %d–%d (\"| %s |\")", file, r.line, kmsg.NameForKey(a.key), a.key, r.lo, r.hi, a.min, a.max, want)
		}
	}
	for key, r := range rows {
		if lookupAPI(key) == nil {
			t.Errorf("%s:%d: %s (%d) is listed but not served; remove it", file, r.line, kmsg.NameForKey(key), key)
		}
	}
}

// The "Supported Kafka APIs" table of README.md and the table of the package
// doc list exactly what the registry serves.
func TestSupportedAPIsTables(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(readme), "\n")
	start := -1
	for i, l := range lines {
		if strings.TrimSpace(l) == "## Supported Kafka APIs" {
			start = i
			break
		}
	}
	if start < 0 {
		t.Fatal(`README.md: no "## Supported Kafka APIs" section`)
	}
	checkAPITable(t, "README.md", parseAPITable(t, "README.md", lines, start, ""))

	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	lines = strings.Split(string(doc), "\n")
	start = -1
	for i, l := range lines {
		if strings.TrimSpace(l) == "// # Supported APIs" {
			start = i
			break
		}
	}
	if start < 0 {
		t.Fatal(`doc.go: no "# Supported APIs" section`)
	}
	checkAPITable(t, "doc.go", parseAPITable(t, "doc.go", lines, start, "//"))
}

// Every group API that package group declares is served at its versions.
func TestGroupAPIs(t *testing.T) {
	for key, v := range group.Versions {
		a := lookupAPI(key)
		if a == nil {
			t.Errorf("group api %s (%d) has no handler: add it to apis_group.go", kmsg.NameForKey(key), key)
			continue
		}
		if a.min != v[0] || a.max != v[1] {
			t.Errorf("group api %d served at %d–%d, group.Versions says %d–%d", key, a.min, a.max, v[0], v[1])
		}
	}
}

// The registry holds every API handled and nothing else, in key order.
func TestRegistry(t *testing.T) {
	apis := apiList()
	for i, a := range apis {
		if i > 0 && apis[i-1].key >= a.key {
			t.Fatalf("apiList not sorted at %d", i)
		}
		if kmsg.RequestForKey(a.key) == nil {
			t.Errorf("key %d is unknown to kmsg", a.key)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("a second registration of key 0 did not panic")
		}
	}()
	regKey(0, 0, 9, (*Broker).handleProduce, 0)
}
