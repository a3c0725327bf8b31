//go:build !(invariants || race)

package cluster

// invariants is off: see invariants_on.go.
const invariants = false
