// Command kfake serves franz-go's fake Kafka cluster (pkg/kfake) as one broker
// on a loopback port, so that the benchmark harness can measure it in its own
// process like any other broker. It runs until SIGTERM or SIGINT.
//
//	kfake -port 9092 [-data-dir DIR] [-sync]
package main

import (
	"flag"
	"fmt"
	"net/http"
	_ "net/http/pprof" // served only with -pprof
	"os"
	"os/signal"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	port := flag.Int("port", 9092, "loopback TCP port to listen on")
	dataDir := flag.String("data-dir", "", "persist to this directory (kfake.DataDir); empty keeps everything in memory")
	sync := flag.Bool("sync", false, "fsync every batch (kfake.SyncWrites)")
	pprofAddr := flag.String("pprof", "", "host:port for net/http/pprof (default off)")
	flag.Parse()

	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(*port)}
	if *dataDir != "" {
		opts = append(opts, kfake.DataDir(*dataDir))
	}
	if *sync {
		opts = append(opts, kfake.SyncWrites())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kfake:", err)
		os.Exit(1)
	}
	if *pprofAddr != "" {
		go func() { fmt.Fprintln(os.Stderr, "kfake: pprof:", http.ListenAndServe(*pprofAddr, nil)) }()
	}
	fmt.Println("kfake listening on", c.ListenAddrs())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	c.Close()
	fmt.Println("kfake stopped")
}
