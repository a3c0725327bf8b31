package netio

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// apiVersionsKey is ApiVersions' api_key; its response header is always v0.
const apiVersionsKey = 18

var (
	errShortHeader  = errors.New("netio: request header truncated")
	errBadClientID  = errors.New("netio: request header client_id length invalid")
	errBadTags      = errors.New("netio: request header tagged fields malformed")
	errUnknownAPI   = errors.New("netio: unknown api key")
	errNegativeSize = errors.New("netio: negative frame size")
	errFrameTooBig  = errors.New("netio: frame size exceeds MaxRequestSize")
)

// header is a parsed request header (v1 or v2).
type header struct {
	key, version int16
	corr         int32
	flexible     bool
	clientID     []byte // aliases the frame; nil when null
	clientIDNull bool
}

// parseHeader parses the request header at the start of a frame payload p and
// returns the body that follows it. The returned slices alias p; body is
// capped (body[:len:len]) so that appending to it cannot clobber p.
func parseHeader(p []byte, h *header) (body []byte, err error) {
	if len(p) < 10 {
		return nil, errShortHeader
	}
	h.key = int16(binary.BigEndian.Uint16(p[0:]))
	h.version = int16(binary.BigEndian.Uint16(p[2:]))
	h.corr = int32(binary.BigEndian.Uint32(p[4:]))
	known, flex := flexible(h.key, h.version)
	if !known {
		return nil, fmt.Errorf("%w %d", errUnknownAPI, h.key)
	}
	h.flexible = flex
	n := int(int16(binary.BigEndian.Uint16(p[8:])))
	p = p[10:]
	switch {
	case n == -1:
		h.clientID, h.clientIDNull = nil, true
	case n < -1 || n > len(p):
		return nil, fmt.Errorf("%w: %d", errBadClientID, n)
	default:
		h.clientID, h.clientIDNull = p[:n:n], false
		p = p[n:]
	}
	if flex {
		if p, err = skipTags(p); err != nil {
			return nil, err
		}
	}
	return p[:len(p):len(p)], nil
}

// skipTags skips a tagged-field section (count uvarint, then per field tag
// uvarint, size uvarint, size bytes) and returns what follows it.
func skipTags(p []byte) ([]byte, error) {
	count, n := binary.Uvarint(p)
	if n <= 0 {
		return nil, errBadTags
	}
	p = p[n:]
	// Every field takes at least two bytes, which bounds the loop by len(p).
	if count > uint64(len(p))/2 {
		return nil, errBadTags
	}
	for range count {
		_, n = binary.Uvarint(p) // tag
		if n <= 0 {
			return nil, errBadTags
		}
		p = p[n:]
		size, n := binary.Uvarint(p)
		if n <= 0 || size > uint64(len(p)-n) {
			return nil, errBadTags
		}
		p = p[n+int(size):]
	}
	return p, nil
}

// appendResponseHeader appends the response header for a request with the
// given key, correlation id and flexibility.
func appendResponseHeader(b []byte, key int16, corr int32, flexible bool) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	if flexible && key != apiVersionsKey {
		b = append(b, 0) // empty tagged-field section
	}
	return b
}

// apiInfo caches, per api key, what kmsg says about its request versions, so
// that the hot path allocates no kmsg request.
type apiInfo struct {
	known bool
	// exact reports that IsFlexible is a threshold over 0..maxVersion, so
	// flexFrom answers it; otherwise ask kmsg every time.
	exact      bool
	maxVersion int16
	flexFrom   int16 // first flexible version; maxVersion+1 if none
}

// apiTableSize covers every key kmsg knows today with room to spare; keys
// beyond it are answered by kmsg directly.
const apiTableSize = 256

var apiTable = buildAPITable()

func buildAPITable() *[apiTableSize]apiInfo {
	var t [apiTableSize]apiInfo
	for k := range t {
		r := kmsg.RequestForKey(int16(k))
		if r == nil {
			continue
		}
		e := apiInfo{known: true, exact: true, maxVersion: r.MaxVersion()}
		e.flexFrom = e.maxVersion + 1
		for v := int16(0); v <= e.maxVersion; v++ {
			r.SetVersion(v)
			f := r.IsFlexible()
			switch {
			case f && e.flexFrom > v:
				e.flexFrom = v
			case !f && e.flexFrom <= v:
				e.exact = false // not monotonic: never trust the table for it
			}
		}
		t[k] = e
	}
	return &t
}

// flexible reports whether key is a known api key and whether its request at
// version uses header v2 (and so its response header v1).
func flexible(key, version int16) (known, flex bool) {
	if key >= 0 && int(key) < apiTableSize {
		e := &apiTable[key]
		if !e.known {
			return false, false
		}
		if e.exact && version >= 0 && version <= e.maxVersion {
			return true, version >= e.flexFrom
		}
	}
	return flexibleSlow(key, version)
}

func flexibleSlow(key, version int16) (known, flex bool) {
	r := kmsg.RequestForKey(key)
	if r == nil {
		return false, false
	}
	r.SetVersion(version)
	return true, r.IsFlexible()
}
