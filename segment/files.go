package segment

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
)

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("segment: %w", err)
	}
	return nil
}

// List returns the base offsets of the segments in dir (those with a .log
// file), in increasing order. Index files without a log are ignored.
func List(dir string) ([]int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("segment: list: %w", err)
	}
	var bases []int64
	for _, e := range ents {
		name := e.Name()
		stem, ok := strings.CutSuffix(name, LogSuffix)
		if !ok || len(stem) != 20 || e.IsDir() {
			continue
		}
		base, err := strconv.ParseInt(stem, 10, 64)
		if err != nil || base < 0 {
			continue
		}
		bases = append(bases, base)
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	return bases, nil
}
