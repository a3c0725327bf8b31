//go:build race

package main

// raceEnabled builds the child binary with -race too.
const raceEnabled = true
