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

	"github.com/easel-io/easel/internal/freeport"
)

// enablePprof makes every broker serve pprof (set before start) and
// profile write its profiles to prefix-broker-ID.cpu.pprof.
func (bs *brokers) enablePprof(prefix string) error {
	if err := os.MkdirAll(filepath.Dir(prefix), 0o755); err != nil {
		return err
	}
	for _, b := range bs.List {
		addr, err := freeport.Addr()
		if err != nil {
			return err
		}
		bs.pprof[b.ID] = addr
		b.Args = append(b.Args, "--pprof", addr)
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
	live := bs.Live()
	errs := make(chan error, len(live))
	for _, b := range live {
		go func() {
			errs <- fetchProfile(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", bs.pprof[b.ID], max(1, int(dur/time.Second))),
				fmt.Sprintf("%s-broker-%d.cpu.pprof", bs.profPrefix, b.ID))
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
