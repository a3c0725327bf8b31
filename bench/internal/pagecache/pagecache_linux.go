package pagecache

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Where the kernel keeps what this package reads and writes (variables
// for the tests).
var (
	orderPath   = "/sys/module/page_reporting/parameters/page_reporting_order"
	balloonPath = "/sys/bus/virtio/drivers/virtio_balloon"
	buddyPath   = "/proc/buddyinfo"
)

// ReadReporting reads the free page reporting state from sysfs.
func ReadReporting() Reporting {
	r := Reporting{Order: -1}
	if ents, err := os.ReadDir(balloonPath); err == nil {
		for _, e := range ents {
			r.Active = r.Active || strings.HasPrefix(e.Name(), "virtio")
		}
	}
	if b, err := os.ReadFile(orderPath); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			r.Order = n
		}
	} else {
		r.Active = false // no page_reporting module: nothing reports
	}
	if top, err := orders(); err == nil && r.Order >= top {
		r.Off = true
	}
	return r
}

// orders is the number of block orders the buddy allocator has (its
// largest order plus one), read from the columns of /proc/buddyinfo.
func orders() (int, error) {
	b, err := os.ReadFile(buddyPath)
	if err != nil {
		return 0, err
	}
	return parseOrders(string(b))
}

// parseOrders counts the order columns of a /proc/buddyinfo text.
func parseOrders(buddyinfo string) (int, error) {
	n := 0
	for line := range strings.SplitSeq(buddyinfo, "\n") {
		// "Node 0, zone   Normal   3658   3840 ..."
		if _, rest, ok := strings.Cut(line, "zone"); ok {
			n = max(n, len(strings.Fields(rest))-1)
		}
	}
	if n == 0 {
		return 0, fmt.Errorf("%s: no zone lines", buddyPath)
	}
	return n, nil
}

// HoldReporting stops free page reporting until the returned function is
// called, by raising page_reporting_order above the largest block order,
// and reports the state it found. The function puts the order back. Where
// nothing reports, or reporting is already off, it changes nothing and the
// function does nothing. It needs root. If the process dies before the
// function runs, reporting stays off until the next boot or until someone
// writes the order back.
func HoldReporting() (Reporting, func() error, error) {
	was := ReadReporting()
	noop := func() error { return nil }
	if !was.Active || was.Off {
		return was, noop, nil
	}
	top, err := orders()
	if err != nil {
		return was, noop, err
	}
	if err := writeOrder(top); err != nil {
		return was, noop, fmt.Errorf("hold free page reporting: %w", err)
	}
	if now := ReadReporting(); !now.Off {
		_ = writeOrder(was.Order)
		return was, noop, fmt.Errorf("hold free page reporting: %s reads %d after writing %d", orderPath, now.Order, top)
	}
	return was, func() error { return writeOrder(was.Order) }, nil
}

func writeOrder(n int) error {
	return os.WriteFile(orderPath, []byte(strconv.Itoa(n)+"\n"), 0o644)
}

// Prime touches all available memory but reserve bytes (MemAvailable less
// reserve), page by page, and frees it, so that the pages the guest gets
// from the hypervisor on first touch are then free in the guest, for the
// page cache to recycle. It returns how much it touched and how long that
// took. It is worth calling only while reporting is held off; reserve
// should leave room for everything else (a few GiB).
func Prime(reserve int64) (int64, time.Duration, error) {
	n := MemAvailable() - reserve
	if n <= 0 {
		return 0, 0, nil
	}
	const chunk = 1 << 30
	page := int64(os.Getpagesize())
	var maps [][]byte
	defer func() {
		for _, m := range maps {
			_ = unix.Munmap(m)
		}
	}()
	start := time.Now()
	for left := n; left > 0; left -= chunk {
		m, err := unix.Mmap(-1, 0, int(min(left, chunk)), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return 0, 0, fmt.Errorf("prime the page cache: %w", err)
		}
		maps = append(maps, m)
		for i := int64(0); i < int64(len(m)); i += page {
			m[i] = 1
		}
	}
	return n, time.Since(start), nil
}

// MemAvailable is /proc/meminfo's MemAvailable in bytes (0 if unknown).
func MemAvailable() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
