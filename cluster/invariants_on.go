//go:build invariants || race

package cluster

// invariants turns on State.Apply's check of the invariants of everything an
// entry touched (built with -race or -tags invariants: tests pay for the
// checks, production does not).
const invariants = true
