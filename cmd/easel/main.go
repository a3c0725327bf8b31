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
// EASEL_DATA_DIR), and in a Java properties file given with --config, under
// Kafka's key for the setting (log.dirs, log.retention.hours) or, for
// settings Kafka does not have, an easel. key (see easel.properties.sample).
// A flag wins over a variable, a variable over the file. Run easel -help for
// the list, easel --print-config for the effective configuration. A bad
// flag, variable or file value exits with status 2; a Kafka key Easel does
// not implement is logged as a warning.
//
// With --metrics host:port it serves Prometheus metrics at /metrics, and
// /healthz and /readyz for orchestrators (see package metrics for the list
// of metrics and their Kafka equivalents). --log-format json logs one JSON
// object a line.
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
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// newLogger returns the logger cfg asks for (--log-level, --log-format),
// writing to w.
func newLogger(w io.Writer, cfg config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func main() {
	cfg, err := parseConfig(os.Args[1:], os.LookupEnv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%v\nRun 'easel -help' for the flags.\n", err)
		os.Exit(2)
	}
	if cfg.PrintConfig {
		if err := cfg.Loaded.print(os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "%v\n", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	log := newLogger(os.Stderr, cfg)
	slog.SetDefault(log)
	cfg.Loaded.logTo(log)

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
