package main

import "testing"

func TestParseCPUTimes(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		ok         bool
		want       cpuTimes
	}{
		{"linux 6", "cpu  100 5 50 800 20 0 10 15 7 0\ncpu0 50 2 25 400 10 0 5 7 3 0\n", true, cpuTimes{total: 1000, idle: 800, iowait: 20, steal: 15}},
		{"no guest columns", "intr 1\ncpu  1 2 3 4 5 6 7 8\n", true, cpuTimes{total: 36, idle: 4, iowait: 5, steal: 8}},
		{"too few columns", "cpu  1 2 3 4\n", false, cpuTimes{}},
		{"not a number", "cpu  1 2 x 4 5 6 7 8\n", false, cpuTimes{}},
		{"no cpu line", "cpu0 1 2 3 4 5 6 7 8\n", false, cpuTimes{}},
	} {
		got, ok := parseCPUTimes(tc.stat)
		if ok != tc.ok || got != tc.want {
			t.Errorf("%s: got %+v %v, want %+v %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
	a := cpuTimes{total: 1000, idle: 800, iowait: 20, steal: 15}
	b := cpuTimes{total: 1200, idle: 900, iowait: 40, steal: 35}
	if sh := shareSince(a, b); sh == nil || sh.Steal != 10 || sh.IOWait != 10 || sh.Idle != 50 {
		t.Errorf("shareSince: %+v", sh)
	}
	if sh := shareSince(b, b); sh != nil {
		t.Errorf("shareSince with no time passed: %+v", sh)
	}
}
