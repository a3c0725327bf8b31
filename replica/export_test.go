package replica

// Dropped counts the responses (per partition) f dropped because their
// assignment changed while they were in flight.
func Dropped(f *Fetchers) int64 { return f.dropped.Load() }

// Counts returns how many fetchers and partitions f runs.
func Counts(f *Fetchers) (fetchers, parts int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.mu.fetchers), len(f.mu.parts)
}
