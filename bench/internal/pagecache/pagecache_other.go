//go:build !linux

package pagecache

import "time"

// ReadReporting reports nothing active: free page reporting is Linux's.
func ReadReporting() Reporting { return Reporting{Order: -1} }

// HoldReporting changes nothing here and returns a function that does
// nothing.
func HoldReporting() (Reporting, func() error, error) {
	return ReadReporting(), func() error { return nil }, nil
}

// Prime does nothing here: without free page reporting a freed page stays
// with the machine.
func Prime(reserve int64) (int64, time.Duration, error) { return 0, 0, nil }

// MemAvailable is unknown here: 0.
func MemAvailable() int64 { return 0 }
