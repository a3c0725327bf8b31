package main

import "github.com/easel-io/easel/bench/internal/easelproc"

// brokers is a set of easel child processes (bench/internal/easelproc)
// with the CPU profiling of -pprof (pprof.go).
type brokers struct {
	*easelproc.Cluster
	pprof map[int32]string // broker id → its --pprof address (see enablePprof)
	// profPrefix starts the paths of the CPU profiles profile writes ("":
	// none; see enablePprof).
	profPrefix string
}

// newBrokers lays out n brokers under root: n == 1 is a single broker
// without cluster flags; otherwise every broker is a raft voter with the
// given --cluster-timing. extra flags go to every broker.
func newBrokers(name, bin, root string, n int, timing string, extra []string) (*brokers, error) {
	c, err := easelproc.New(easelproc.Config{Name: name, Bin: bin, Root: root, N: n, Timing: timing, Extra: extra})
	if err != nil {
		return nil, err
	}
	return &brokers{Cluster: c, pprof: map[int32]string{}}, nil
}
