package main

// What the machine's CPUs did over a run and over each of its rounds, from
// /proc/stat: on a virtual machine the hypervisor's steal (time a vCPU
// wanted to run and the host ran something else) and the time waiting for
// the disk explain a drift that no interleaving can, since they fall on
// whatever target is running.

import (
	"os"
	"strconv"
	"strings"
)

// cpuTimes are the aggregate "cpu" line of /proc/stat, in clock ticks.
type cpuTimes struct {
	total, idle, iowait, steal uint64
}

// parseCPUTimes reads the "cpu " line of a /proc/stat text: user nice
// system idle iowait irq softirq steal [guest guest_nice]. Guest time is
// already counted in user, so it is left out of the total.
func parseCPUTimes(stat string) (cpuTimes, bool) {
	for line := range strings.SplitSeq(stat, "\n") {
		rest, ok := strings.CutPrefix(line, "cpu ")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 8 {
			return cpuTimes{}, false
		}
		var v [8]uint64
		for i := range v {
			n, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				return cpuTimes{}, false
			}
			v[i] = n
		}
		var c cpuTimes
		for _, n := range v {
			c.total += n
		}
		c.idle, c.iowait, c.steal = v[3], v[4], v[7]
		return c, true
	}
	return cpuTimes{}, false
}

// readCPUTimes reads /proc/stat; false where there is none.
func readCPUTimes() (cpuTimes, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, false
	}
	return parseCPUTimes(string(b))
}

// cpuShare is how the CPU time between two readings was spent, in percent.
type cpuShare struct {
	Round  int     `json:"round,omitempty"` // 1-based; 0: the whole run
	Steal  float64 `json:"steal_pct"`
	IOWait float64 `json:"iowait_pct"`
	Idle   float64 `json:"idle_pct"`
}

// shareSince is the share of each kind of time from a to b (nil if no time
// passed or a reading is missing).
func shareSince(a, b cpuTimes) *cpuShare {
	if b.total <= a.total {
		return nil
	}
	d := float64(b.total - a.total)
	pct := func(x, y uint64) float64 {
		if y < x {
			return 0
		}
		return 100 * float64(y-x) / d
	}
	return &cpuShare{Steal: pct(a.steal, b.steal), IOWait: pct(a.iowait, b.iowait), Idle: pct(a.idle, b.idle)}
}
