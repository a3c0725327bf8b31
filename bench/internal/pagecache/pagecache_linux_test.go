package pagecache

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const buddyinfo = `Node 0, zone      DMA      0      0      0      0      0      0      0      0      1      1      3
Node 0, zone    DMA32      6      3      6      2      4      3      3      5      7      3    749
Node 0, zone   Normal   3658   3840   2824   3539   2515   1809   1096    672    450    365   4618
`

func TestParseOrders(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     int
		ok       bool
	}{
		{"orders 0 to 10", buddyinfo, 11, true},
		{"one zone, orders 0 to 3", "Node 0, zone   Normal   1 2 3 4\n", 4, true},
		{"empty", "", 0, false},
		{"no zone lines", "garbage\n", 0, false},
	} {
		got, err := parseOrders(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("%s: parseOrders = %d, %v; want %d, ok %v", c.name, got, err, c.want, c.ok)
		}
	}
}

// fakeKernel points the package at files in a temporary directory: a
// page_reporting_order holding order, a balloon driver directory with a
// bound device if balloon, and a buddyinfo with orders 0 to 10.
func fakeKernel(t *testing.T, order string, balloon bool) {
	t.Helper()
	dir := t.TempDir()
	saved := [...]string{orderPath, balloonPath, buddyPath}
	t.Cleanup(func() { orderPath, balloonPath, buddyPath = saved[0], saved[1], saved[2] })
	orderPath = filepath.Join(dir, "page_reporting_order")
	balloonPath = filepath.Join(dir, "virtio_balloon")
	buddyPath = filepath.Join(dir, "buddyinfo")
	if order != "" {
		if err := os.WriteFile(orderPath, []byte(order), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if balloon {
		if err := os.MkdirAll(filepath.Join(balloonPath, "virtio3"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(buddyPath, []byte(buddyinfo), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readOrder(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(orderPath)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestHoldReportingRaisesAndRestores(t *testing.T) {
	fakeKernel(t, "9\n", true)
	was, restore, err := HoldReporting()
	if err != nil {
		t.Fatal(err)
	}
	if was != (Reporting{Active: true, Order: 9}) {
		t.Errorf("state before: %+v", was)
	}
	if got := readOrder(t); got != "11" {
		t.Errorf("order while held: %s, want 11", got)
	}
	if now := ReadReporting(); !now.Off || !now.Active {
		t.Errorf("state while held: %+v", now)
	}
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	if got := readOrder(t); got != "9" {
		t.Errorf("order after restore: %s, want 9", got)
	}
}

func TestHoldReportingLeavesAloneWhatDoesNotReport(t *testing.T) {
	for _, c := range []struct {
		name    string
		order   string
		balloon bool
		want    Reporting
	}{
		{"no balloon device", "9", false, Reporting{Order: 9}},
		{"already off", "11", true, Reporting{Active: true, Order: 11, Off: true}},
		{"no page_reporting module", "", true, Reporting{Order: -1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fakeKernel(t, c.order, c.balloon)
			was, restore, err := HoldReporting()
			if err != nil || was != c.want {
				t.Fatalf("HoldReporting: %+v, %v; want %+v", was, err, c.want)
			}
			if c.order != "" && readOrder(t) != c.order {
				t.Errorf("order changed to %s", readOrder(t))
			}
			if err := restore(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestHoldReportingFailsWhenTheOrderCannotBeWritten(t *testing.T) {
	fakeKernel(t, "", true)
	orderPath = "/proc/version" // readable, refuses every write, even root's
	if _, restore, err := HoldReporting(); err == nil {
		t.Error("HoldReporting succeeded without a writable order")
	} else if restore() != nil {
		t.Error("the restore function of a failed hold did something")
	}
}

func TestWarmWritesAndDeletes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "warm")
	el, err := Warm(path, 8<<20)
	if err != nil || el <= 0 {
		t.Fatalf("Warm: %v, %v", el, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("warm-up file left behind: %v", err)
	}
	if el, err := Warm(path, 0); err != nil || el != 0 {
		t.Errorf("Warm of 0 bytes: %v, %v", el, err)
	}
}

func TestPrime(t *testing.T) {
	avail := MemAvailable()
	n, el, err := Prime(avail - (64<<20 + 5))
	if err != nil || n < 32<<20 || n > 96<<20 || el <= 0 {
		t.Fatalf("Prime of about 64 MiB: %d bytes in %v, %v", n, el, err)
	}
	if n, _, err := Prime(avail * 2); err != nil || n != 0 {
		t.Errorf("Prime with more reserved than there is: %d bytes, %v", n, err)
	}
}

func TestMemAvailable(t *testing.T) {
	if n := MemAvailable(); n <= 0 {
		t.Errorf("MemAvailable = %d", n)
	}
}
