package main

import (
	"errors"
	"testing"

	"github.com/easel-io/easel/broker"
)

// /readyz is false while starting and shutting down, true while serving.
func TestReadiness(t *testing.T) {
	r := newReadiness()
	if err := r.check(); err == nil {
		t.Fatal("ready before starting")
	}
	r.set(errors.New("hosting the partitions"))
	if err := r.check(); err == nil || err.Error() != "hosting the partitions" {
		t.Fatalf("check = %v", err)
	}
	r.serving(nil, &broker.Broker{})
	if err := r.check(); err != nil {
		t.Fatalf("not ready while serving a single node: %v", err)
	}
	r.set(errors.New("shutting down"))
	if err := r.check(); err == nil {
		t.Fatal("ready while shutting down")
	}
}
