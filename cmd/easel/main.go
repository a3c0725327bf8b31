// Command easel runs a single-node Kafka-compatible broker backed by Easel's
// storage engine.
//
// With no flags it listens on 127.0.0.1:9092, keeps its data in ./easel-data
// and creates topics on first use:
//
//	go run ./cmd/easel
//	easel --listen 0.0.0.0:9092 --advertise kafka.example.com:9092 --data-dir /var/lib/easel
//
// Every flag can also be set by an environment variable: EASEL_ followed by
// the flag name in upper case with dashes as underscores (--data-dir is
// EASEL_DATA_DIR). A flag on the command line wins. Run easel -help for the
// list. A bad flag or variable exits with status 2.
//
// SIGTERM or SIGINT shuts down gracefully: no new connections or requests,
// long polls end, in-flight requests finish (up to --shutdown-timeout), the
// engine flushes and marks the shutdown clean so that the next start skips
// recovery; the exit status is 0. A second signal exits at once with status 1,
// and the next start recovers the data directory.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	cfg, err := parseConfig(os.Args[1:], os.LookupEnv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%v\nRun 'easel -help' for the flags.\n", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	slog.SetDefault(log)

	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-sigs
		log.Info("signal received, shutting down gracefully", "signal", s.String())
		cancel()
		s = <-sigs
		log.Error("second signal, exiting without a clean shutdown", "signal", s.String())
		os.Exit(1)
	}()

	if err := run(ctx, cfg, log); err != nil {
		log.Error("easel stopped", "err", err)
		os.Exit(1)
	}
}
