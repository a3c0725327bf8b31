package properties

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"testing/quick"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Entry
	}{
		{"empty", "", nil},
		{"blank and comments", "\n   \n# x=y\n\t! a=b\n", nil},
		{"equals", "a=b", []Entry{{"a", "b", 1}}},
		{"colon", "a:b", []Entry{{"a", "b", 1}}},
		{"space", "a b", []Entry{{"a", "b", 1}}},
		{"spaces around separator", "  a  =  b c  ", []Entry{{"a", "b c  ", 1}}},
		{"whitespace then colon", "a \t: b", []Entry{{"a", "b", 1}}},
		{"second separator is value", "a==b", []Entry{{"a", "=b", 1}}},
		{"key only", "flag", []Entry{{"flag", "", 1}}},
		{"key and separator only", "flag=", []Entry{{"flag", "", 1}}},
		{"empty key", "=v", []Entry{{"", "v", 1}}},
		{"line numbers", "# c\na=1\n\nb=2", []Entry{{"a", "1", 2}, {"b", "2", 4}}},
		{"crlf and cr", "a=1\r\nb=2\rc=3\n", []Entry{{"a", "1", 1}, {"b", "2", 2}, {"c", "3", 3}}},
		{"continuation", "a=1,\\\n    2,\\\n\t3\nb=x", []Entry{{"a", "1,2,3", 1}, {"b", "x", 4}}},
		{"continuation crlf", "a=x\\\r\n  y", []Entry{{"a", "xy", 1}}},
		{"even backslashes do not continue", "a=x\\\\\nb=y", []Entry{{"a", `x\`, 1}, {"b", "y", 2}}},
		{"continuation at end of input", "a=x\\", []Entry{{"a", "x", 1}}},
		{"continued line starting with hash", "a=x\\\n#y", []Entry{{"a", "x#y", 1}}},
		{"comment does not continue", "# c\\\na=1", []Entry{{"a", "1", 2}}},
		{"continuation into blank line", "a=x\\\n\nb=2", []Entry{{"a", "x", 1}, {"b", "2", 3}}},
		{"escaped separators in key", `a\=b\:c\ d=e`, []Entry{{"a=b:c d", "e", 1}}},
		{"escapes in value", `k=\t\n\r\f\\\"\q`, []Entry{{"k", "\t\n\r\f\\\"q", 1}}},
		{"unicode escape", `k=caf\u00e9 \u20AC`, []Entry{{"k", "café €", 1}}},
		{"surrogate pair", `k=\ud83d\ude00`, []Entry{{"k", "😀", 1}}},
		{"lone surrogate", `k=\ud83dx`, []Entry{{"k", "\ufffdx", 1}}},
		{"utf-8 text", "schlüssel=wert ✓", []Entry{{"schlüssel", "wert ✓", 1}}},
		{"escaped multibyte", `k=\é`, []Entry{{"k", "é", 1}}},
		{"hash inside value", "a=b#c", []Entry{{"a", "b#c", 1}}},
		{"duplicates kept in order", "a=1\na=2", []Entry{{"a", "1", 1}, {"a", "2", 2}}},
		{"leading escaped space in value", `a=\ b`, []Entry{{"a", " b", 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse(%q)\n got %+v\nwant %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in   string
		want error
		line string
	}{
		{`a=\u12`, ErrBadEscape, "line 1"},
		{"x=1\n\nk=\\uzzzz", ErrBadEscape, "line 3"},
		{"x=1\\\n  \\u1", ErrBadEscape, "line 1"},
		{`\u00g0=1`, ErrBadEscape, "line 1"},
		{"a=1\nb=\xff", ErrNotUTF8, "line 2"},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.in))
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.line) {
			t.Errorf("Parse(%q) = %v, want %v at %s", tt.in, err, tt.want, tt.line)
		}
	}
}

// roundTrip writes entries with Escape and parses them back.
func roundTrip(key, value string) (Entry, error) {
	es, err := Parse([]byte("# written\n" + Escape(key, true) + "=" + Escape(value, false) + "\n"))
	if err != nil {
		return Entry{}, err
	}
	if len(es) != 1 {
		return Entry{}, errors.New("not one entry")
	}
	return es[0], nil
}

func TestEscapeRoundTrip(t *testing.T) {
	f := func(key, value string) bool {
		key, value = strings.ToValidUTF8(key, "?"), strings.ToValidUTF8(value, "?")
		e, err := roundTrip(key, value)
		return err == nil && e.Key == key && e.Value == value
	}
	if err := quick.Check(f, nil); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"", " ", "#", "!x", "a=b", "a:b", `\`, "x\\", "\n", "\r\n", " lead", "trail ", "\t\f"} {
		if !f(s, s) {
			t.Errorf("round trip of %q failed", s)
		}
	}
}

// FuzzParse checks that Parse never panics, returns valid UTF-8, and that
// what it returns survives Escape and Parse unchanged.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"a=b", "a b\\\n c", "#x\n!y\nk:v", `k=\u00e9\ud83d\ude00`, "a\\=b=c\r\nd", `\u12`, "x\\\\\n", "\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		es, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrBadEscape) && !errors.Is(err, ErrNotUTF8) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		for _, e := range es {
			if e.Line < 1 {
				t.Fatalf("entry %q on line %d", e.Key, e.Line)
			}
			got, err := roundTrip(e.Key, e.Value)
			if err != nil || got.Key != e.Key || got.Value != e.Value {
				t.Fatalf("round trip of %q=%q gave %q=%q, %v", e.Key, e.Value, got.Key, got.Value, err)
			}
		}
	})
}
