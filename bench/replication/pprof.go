package main

// CPU profiles of the brokers over a run's measured window, for finding
// where a workload's time goes (-pprof DIR): every broker serves
// net/http/pprof on a loopback port of its own.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// enablePprof makes every broker serve pprof (set before start) and
// profile write its profiles to prefix-broker-ID.cpu.pprof.
func (bs *brokers) enablePprof(prefix string) error {
	if err := os.MkdirAll(filepath.Dir(prefix), 0o755); err != nil {
		return err
	}
	for _, b := range bs.list {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		b.pprof = addr
		b.args = append(b.args, "--pprof", addr)
	}
	bs.profPrefix = prefix
	return nil
}

// profile takes a CPU profile of dur from every live broker at once, in the
// background; the channel gets the first error, or nil, once all are
// written. Without enablePprof it reports nil at once.
func (bs *brokers) profile(ctx context.Context, dur time.Duration) <-chan error {
	done := make(chan error, 1)
	if bs.profPrefix == "" {
		done <- nil
		return done
	}
	live := bs.live()
	errs := make(chan error, len(live))
	for _, b := range live {
		go func() {
			errs <- fetchProfile(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", b.pprof, max(1, int(dur/time.Second))),
				fmt.Sprintf("%s-broker-%d.cpu.pprof", bs.profPrefix, b.id))
		}()
	}
	go func() {
		var all []error
		for range live {
			all = append(all, <-errs)
		}
		done <- errors.Join(all...)
	}()
	return done
}

func fetchProfile(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
