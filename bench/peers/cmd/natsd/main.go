// Command natsd runs an embedded NATS server with JetStream file storage on a
// loopback port, so that the benchmark harness can measure JetStream in its
// own process. It runs until SIGTERM or SIGINT.
//
//	natsd -port 4222 -store-dir DIR
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

func main() {
	port := flag.Int("port", 4222, "loopback TCP port to listen on")
	storeDir := flag.String("store-dir", "", "JetStream storage directory (required)")
	syncAlways := flag.Bool("sync", false, "fsync every write (sync_always)")
	flag.Parse()
	if *storeDir == "" {
		fmt.Fprintln(os.Stderr, "natsd: -store-dir is required")
		os.Exit(2)
	}
	s, err := server.NewServer(&server.Options{
		Host:                   "127.0.0.1",
		Port:                   *port,
		JetStream:              true,
		StoreDir:               *storeDir,
		JetStreamMaxStore:      1 << 40,
		JetStreamMaxMemory:     1 << 30,
		MaxPayload:             8 << 20,
		SyncAlways:             *syncAlways,
		NoSigs:                 true,
		DisableJetStreamBanner: true,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "natsd:", err)
		os.Exit(1)
	}
	s.ConfigureLogger()
	s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		fmt.Fprintln(os.Stderr, "natsd: not ready after 30s")
		os.Exit(1)
	}
	fmt.Println("natsd listening on", s.ClientURL())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	s.Shutdown()
	s.WaitForShutdown()
	fmt.Println("natsd stopped")
}
