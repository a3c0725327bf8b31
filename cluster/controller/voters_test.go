package controller

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestParseVoters(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // FormatVoters of the result; "" for an error
	}{
		{"1@127.0.0.1:9093", "1@127.0.0.1:9093"},
		{"1@127.0.0.1:9093,2@127.0.0.2:9093, 3@host:1", "1@127.0.0.1:9093,2@127.0.0.2:9093,3@host:1"},
		{"2@[::1]:9093,1@[::1]:9094", "2@[::1]:9093,1@[::1]:9094"},
		{"", ""},
		{" ", ""},
		{"1@a:1,", ""},
		{"1@a:1,1@b:2", ""},    // duplicate id
		{"1@a:1,2@a:1", ""},    // duplicate address
		{"x@a:1", ""},          // bad id
		{"-1@a:1", ""},         // negative id
		{"4294967296@a:1", ""}, // id over int32
		{"1@a", ""},            // no port
		{"1@:9093", ""},        // no host
		{"1@a:0", ""},          // port 0
		{"1@a:65536", ""},      // port too big
		{"1a:1", ""},           // no @
		{"1@a:1@b:2", ""},      // junk
	} {
		vs, err := ParseVoters(tc.in)
		if tc.want == "" {
			if !errors.Is(err, ErrVoters) {
				t.Errorf("%q: %v, %v; want an error", tc.in, vs, err)
			}
			continue
		}
		if err != nil || FormatVoters(vs) != tc.want {
			t.Errorf("%q: %q, %v; want %q", tc.in, FormatVoters(vs), err, tc.want)
		}
	}
	a, _ := ParseVoters("1@a:1,2@b:2")
	b, _ := ParseVoters("2@b:2,1@a:1")
	c, _ := ParseVoters("1@a:1,2@b:3")
	if voterSet(a) != voterSet(b) || voterSet(a) == voterSet(c) || DerivedClusterID(a) != DerivedClusterID(b) || len(DerivedClusterID(a)) != 22 {
		t.Fatal("fingerprints or derived ids")
	}
}

func FuzzParseVoters(f *testing.F) {
	for _, s := range []string{"1@127.0.0.1:9093", "1@a:1,2@b:2", "1@[::1]:1", "", "1@a:1,1@a:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		vs, err := ParseVoters(s)
		if err != nil {
			return
		}
		again, err := ParseVoters(FormatVoters(vs))
		if err != nil || FormatVoters(again) != FormatVoters(vs) {
			t.Fatalf("%q: formatted %q does not parse back: %v", s, FormatVoters(vs), err)
		}
	})
}

func TestHCLogger(t *testing.T) {
	var buf bytes.Buffer
	l := newHCLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), "raft")
	l.Info("hello", "a", 1, "fmt", hclog.Fmt("%d-%s", 7, "x"), "odd")
	l.Named("wal").With("k", "v", "lonely").Warn("named", "hex", hclog.Hex(255), "err", errors.New("boom"))
	l.Trace("hidden")
	l.Log(hclog.NoLevel, "nolevel")
	l.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}).Print("[ERR] from std")
	l.SetLevel(hclog.Error)
	l.Warn("dropped")
	if l.IsWarn() || !l.IsError() || l.GetLevel() != hclog.Error || l.Name() != "raft" {
		t.Fatal("levels or name")
	}
	out := buf.String()
	for _, want := range []string{
		`msg=hello logger=raft a=1 fmt=7-x EXTRA_VALUE_AT_END=odd`,
		`level=WARN msg=named logger=raft.wal k=v EXTRA_VALUE_AT_END=lonely hex=0xff err=boom`,
		`msg=nolevel`,
		`level=ERROR msg="from std"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hidden") || strings.Contains(out, "dropped") {
		t.Errorf("debug or filtered lines logged:\n%s", out)
	}
}
