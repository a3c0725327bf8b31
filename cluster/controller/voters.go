package controller

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
)

// Voter is one raft voter: an entry id@host:port of Kafka's
// controller.quorum.voters, host:port being the voter's raft address.
type Voter struct {
	ID   int32
	Addr string
}

// ErrVoters: a voter list that does not parse or names an id or address
// twice.
var ErrVoters = errors.New("controller: invalid voter list")

// ParseVoters parses a voter list "1@127.0.0.1:9093,2@127.0.0.2:9093"
// (Kafka's controller.quorum.voters). Spaces around entries are ignored.
// Errors (wrapping ErrVoters): an empty list or entry, an id that is not a
// non-negative int32, an address that is not host:port with a port in
// 1..65535, an id or address given twice.
func ParseVoters(s string) ([]Voter, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("%w: empty", ErrVoters)
	}
	var vs []Voter
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		idStr, addr, ok := strings.Cut(entry, "@")
		if !ok {
			return nil, fmt.Errorf("%w: %q is not id@host:port", ErrVoters, entry)
		}
		id, err := strconv.ParseInt(idStr, 10, 32)
		if err != nil || id < 0 {
			return nil, fmt.Errorf("%w: %q: id %q is not a node id", ErrVoters, entry, idStr)
		}
		if err := checkAddr(addr); err != nil {
			return nil, fmt.Errorf("%w: %q: %w", ErrVoters, entry, err)
		}
		vs = append(vs, Voter{ID: int32(id), Addr: addr})
	}
	if err := checkVoters(vs); err != nil {
		return nil, err
	}
	return vs, nil
}

// checkAddr checks a host:port with a non-empty host and a port in 1..65535.
func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if host == "" {
		return fmt.Errorf("address %q has no host", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("address %q: bad port", addr)
	}
	return nil
}

// checkVoters checks a voter list for duplicates and bad entries.
func checkVoters(vs []Voter) error {
	if len(vs) == 0 {
		return fmt.Errorf("%w: empty", ErrVoters)
	}
	ids := make(map[int32]bool, len(vs))
	addrs := make(map[string]bool, len(vs))
	for _, v := range vs {
		if v.ID < 0 {
			return fmt.Errorf("%w: negative id %d", ErrVoters, v.ID)
		}
		if err := checkAddr(v.Addr); err != nil {
			return fmt.Errorf("%w: voter %d: %w", ErrVoters, v.ID, err)
		}
		if ids[v.ID] {
			return fmt.Errorf("%w: id %d given twice", ErrVoters, v.ID)
		}
		if addrs[v.Addr] {
			return fmt.Errorf("%w: address %s given twice", ErrVoters, v.Addr)
		}
		ids[v.ID], addrs[v.Addr] = true, true
	}
	return nil
}

// FormatVoters is ParseVoters' inverse: "id@host:port,..." in the given
// order.
func FormatVoters(vs []Voter) string {
	var b strings.Builder
	for i, v := range vs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(int64(v.ID), 10))
		b.WriteByte('@')
		b.WriteString(v.Addr)
	}
	return b.String()
}

// sortedVoters returns a copy of vs by id.
func sortedVoters(vs []Voter) []Voter {
	out := slices.Clone(vs)
	slices.SortFunc(out, func(a, b Voter) int { return int(a.ID) - int(b.ID) })
	return out
}

// voterSet is the fingerprint of a voter list that brokers gossip
// (gossip.Meta.VoterSet): the first 8 bytes of the SHA-256 of the list
// sorted by id, never 0. The order in which a list is written does not
// matter.
func voterSet(vs []Voter) uint64 {
	sum := sha256.Sum256([]byte("easel voters " + FormatVoters(sortedVoters(vs))))
	if f := binary.BigEndian.Uint64(sum[:]); f != 0 {
		return f
	}
	return 1
}

// DerivedClusterID is the cluster id a multi-voter cluster gets when none is
// configured: 22 characters of base64url (the form of Kafka's cluster ids)
// of a SHA-256 of the voter list sorted by id. Every broker configured
// with the same voter list derives the same id.
func DerivedClusterID(vs []Voter) string {
	sum := sha256.Sum256([]byte("easel cluster " + FormatVoters(sortedVoters(vs))))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// randomClusterID returns a random 22-character base64url id, as Kafka's
// kafka-storage random-uuid does.
func randomClusterID() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
