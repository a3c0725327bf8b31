// Package properties parses Java properties files (the syntax of Kafka's
// server.properties), as java.util.Properties.load reads them, but from
// UTF-8 text.
//
// # Syntax
//
// The input is split into natural lines at \n, \r or \r\n. Leading
// whitespace (space, tab, form feed) of a line is skipped; a line that is
// then empty is blank, and one starting with '#' or '!' is a comment. Both
// are ignored. Any other line is a logical line, which continues on the next
// natural line when it ends in an odd number of backslashes (the backslash
// and the next line's leading whitespace are dropped; a comment line never
// continues):
//
//	# a comment
//	! also a comment
//	log.dirs = /var/lib/easel
//	listeners:PLAINTEXT://0.0.0.0:9092
//	broker.rack  eu-west-1a
//	controller.quorum.voters=1@a:9093,\
//	                         2@b:9093
//
// The key runs up to the first unescaped '=', ':' or whitespace; then
// whitespace, at most one '=' or ':', and whitespace again are skipped, and
// the rest of the line is the value (trailing whitespace included). In keys
// and values a backslash escapes: \t, \n, \r and \f are those characters,
// \uXXXX is a UTF-16 code unit (a surrogate pair makes one character, a lone
// surrogate becomes U+FFFD), and a backslash before any other character is
// dropped (\=, \:, \ , \#, \\). A \u without four hexadecimal digits is an
// error, as in Java; so is input that is not valid UTF-8.
package properties

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Entry is one key and value of a properties file.
type Entry struct {
	Key, Value string
	// Line is the natural line (1-based) where the entry starts.
	Line int
}

// Errors of Parse, wrapped with the line they occur on.
var (
	ErrBadEscape = errors.New("properties: malformed \\uxxxx escape")
	ErrNotUTF8   = errors.New("properties: not valid UTF-8")
)

// Parse returns the entries of a properties file in the order they appear.
// A key that appears twice appears twice in the result; as in Java, the
// later one should win.
func Parse(data []byte) ([]Entry, error) {
	if !utf8.Valid(data) {
		// Find the line for the message.
		line := 1
		for i := 0; i < len(data); {
			r, n := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && n <= 1 {
				return nil, fmt.Errorf("line %d: %w", line, ErrNotUTF8)
			}
			if data[i] == '\n' {
				line++
			}
			i += n
		}
	}
	s := string(data)
	var out []Entry
	line := 0 // natural lines consumed
	for len(s) > 0 {
		nat, rest := cutLine(s)
		s = rest
		line++
		nat = trimLeft(nat)
		if nat == "" || nat[0] == '#' || nat[0] == '!' {
			continue
		}
		start := line
		// Join continuation lines.
		var logical strings.Builder
		for {
			if !continues(nat) {
				logical.WriteString(nat)
				break
			}
			logical.WriteString(nat[:len(nat)-1])
			if len(s) == 0 {
				break // a trailing backslash at the end of input is dropped
			}
			nat, s = cutLine(s)
			line++
			nat = trimLeft(nat)
		}
		e, err := parseLogical(logical.String())
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", start, err)
		}
		e.Line = start
		out = append(out, e)
	}
	return out, nil
}

// cutLine splits off the first natural line of s (without its terminator).
func cutLine(s string) (line, rest string) {
	i := strings.IndexAny(s, "\r\n")
	if i < 0 {
		return s, ""
	}
	line, rest = s[:i], s[i+1:]
	if s[i] == '\r' && strings.HasPrefix(rest, "\n") {
		rest = rest[1:]
	}
	return line, rest
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\f' }

func trimLeft(s string) string {
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	return s[i:]
}

// continues reports whether a natural line ends in an odd number of
// backslashes.
func continues(s string) bool {
	n := 0
	for i := len(s) - 1; i >= 0 && s[i] == '\\'; i-- {
		n++
	}
	return n%2 == 1
}

// parseLogical splits one logical line into its unescaped key and value.
func parseLogical(s string) (Entry, error) {
	// The key ends at the first unescaped separator or whitespace.
	end := len(s)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' {
			i++ // skip the escaped character
			continue
		}
		if c == '=' || c == ':' || isSpace(c) {
			end = i
			break
		}
	}
	rawKey, rest := s[:end], s[end:]
	rest = trimLeft(rest)
	if rest != "" && (rest[0] == '=' || rest[0] == ':') {
		rest = trimLeft(rest[1:])
	}
	key, err := unescape(rawKey)
	if err != nil {
		return Entry{}, err
	}
	val, err := unescape(rest)
	if err != nil {
		return Entry{}, err
	}
	return Entry{Key: key, Value: val}, nil
}

// unescape resolves the backslash escapes of s.
func unescape(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++
		if i == len(s) {
			break // a lone trailing backslash (only at the end of input)
		}
		switch c = s[i]; c {
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 'f':
			b.WriteByte('\f')
		case 'u':
			u, ok := hex4(s[i+1:])
			if !ok {
				return "", ErrBadEscape
			}
			i += 4
			r := rune(u)
			if utf16.IsSurrogate(r) {
				r = utf8.RuneError
				if u < 0xdc00 && strings.HasPrefix(s[i+1:], `\u`) {
					if lo, ok := hex4(s[i+3:]); ok {
						if pair := utf16.DecodeRune(rune(u), rune(lo)); pair != utf8.RuneError {
							r = pair
							i += 6
						}
					}
				}
			}
			b.WriteRune(r)
		default:
			// Any other escaped character stands for itself; it may be
			// the first byte of a multi-byte character, whose other
			// bytes follow unchanged.
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// hex4 decodes the four hexadecimal digits at the start of s.
func hex4(s string) (uint16, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var v uint16
	for i := range 4 {
		c := s[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint16(d)
	}
	return v, true
}

// Escape returns s written so that Parse reads it back unchanged: as a key
// (every separator and whitespace escaped) when key is set, or as a value
// (leading whitespace escaped).
func Escape(s string, key bool) string {
	var b strings.Builder
	for i, r := range s {
		switch r {
		case '\\':
			b.WriteString(`\\`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\f':
			b.WriteString(`\f`)
		case '=', ':':
			if key {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		case ' ':
			if key || i == 0 {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		case '#', '!':
			if key && i == 0 {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
