// Package pagecache readies the page cache for a benchmark run, so that the
// targets and configurations it compares start from the same memory state.
//
// On the virtual machines this project is measured on, a page the guest
// kernel touches for the first time is about ten times slower to write
// than one it recycles (dd of 2 GiB into a new file: 342–474 MB/s fresh,
// 4.0–4.9 GB/s right after deleting a file of that size). Worse, the kernel
// hands freed memory back to the hypervisor (virtio-balloon free page
// reporting) in passes starting about two seconds after it is freed, so a
// recycled page turns fresh again soon. A warm-up (Warm) alone then covers
// only the first seconds of whatever runs next. HoldReporting stops the
// reporting while a run lasts and Prime makes nearly all memory recycled
// once, so that every later write lands on a page the guest already has.
// bench/peers and bench/replication share it.
package pagecache

import (
	"os"
	"time"
)

// Warm writes n bytes to a new file at path in 1 MiB blocks and deletes it,
// so that the next writes get the pages it used. Deleting the file frees
// its pages without writing them back where writeback has not reached
// them. It returns how long the writing took.
func Warm(path string, n int64) (time.Duration, error) {
	if n <= 0 {
		return 0, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer os.Remove(path)
	defer f.Close()
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i*13 + 1)
	}
	start := time.Now()
	for done := int64(0); done < n; done += int64(len(buf)) {
		if _, err := f.Write(buf); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// Reporting is the state of the kernel's free page reporting.
type Reporting struct {
	// Active: a hypervisor takes freed pages back (the page_reporting
	// module is loaded and a virtio balloon device is bound).
	Active bool `json:"active"`
	// Order is page_reporting_order: free blocks of 2^Order pages and
	// larger are reported; -1 if it could not be read.
	Order int `json:"order"`
	// Off: Order is above the largest block the kernel has, so nothing is
	// reported.
	Off bool `json:"off"`
}
