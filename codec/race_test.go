//go:build race

package codec

// raceEnabled reports whether the race detector is on; it changes
// sync.Pool's behaviour and so allocation counts.
const raceEnabled = true
