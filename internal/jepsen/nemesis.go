package jepsen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// Nemesis injects one kind of fault (a kill, a pause, a partition) into a
// cluster it knows how to reach.
type Nemesis interface {
	// Name names the kind of fault, as in "kill" or "pause".
	Name() string
	// Inject starts one fault, choosing its victims with rng, and returns it.
	Inject(ctx context.Context, rng *rand.Rand) (Fault, error)
}

// Fault is one injected fault.
type Fault struct {
	// Desc says what was done, as in "SIGKILL broker 2".
	Desc string
	// Heal undoes the fault (restarts, resumes, reconnects).
	Heal func(ctx context.Context) error
	// For, if positive, is how long this fault lasts instead of the
	// schedule's FaultFor.
	For time.Duration
}

// Schedule runs faults one at a time, healing each before the next.
type Schedule struct {
	Nemeses []Nemesis
	Rounds  int
	// FaultFor is how long each fault lasts before it is healed.
	FaultFor time.Duration
	// Seed seeds the choice of nemeses and victims; a run is reproduced
	// (up to timing) by its seed.
	Seed uint64
	// During, if set, is called while a fault is active, after it was
	// injected, and must return before FaultFor ends or the round waits
	// for it (for example: wait until some writes are acknowledged).
	During func(ctx context.Context) error
	// Settle, if set, is called after each heal and waits until the
	// cluster is healthy again (for example: every partition's ISR full).
	Settle func(ctx context.Context) error
	// Logf, if set, logs each round.
	Logf func(format string, args ...any)
}

// Round is the record of one fault.
type Round struct {
	N                         int
	Nemesis, Desc             string
	Injected, Healed, Settled time.Time
}

func (r Round) String() string {
	return fmt.Sprintf("round %d: %s (%s): healed after %v, settled after %v more", r.N, r.Nemesis, r.Desc,
		r.Healed.Sub(r.Injected).Round(time.Millisecond), r.Settled.Sub(r.Healed).Round(time.Millisecond))
}

// Run runs Rounds rounds, each nemesis in turn in an order shuffled every
// cycle, and returns the rounds done. On an error the fault of the round is
// healed (if it was injected) before Run returns.
func (s Schedule) Run(ctx context.Context) ([]Round, error) {
	rng := rand.New(rand.NewPCG(s.Seed, 0x6a657073656e))
	logf := s.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	var rounds []Round
	var order []int
	for n := range s.Rounds {
		if len(order) == 0 {
			order = rng.Perm(len(s.Nemeses))
		}
		nem := s.Nemeses[order[0]]
		order = order[1:]
		r := Round{N: n, Nemesis: nem.Name()}
		f, err := nem.Inject(ctx, rng)
		if err != nil {
			return rounds, fmt.Errorf("round %d: %s: %w", n, nem.Name(), err)
		}
		r.Desc, r.Injected = f.Desc, time.Now()
		logf("jepsen: round %d: %s", n, f.Desc)
		dur := s.FaultFor
		if f.For > 0 {
			dur = f.For
		}
		timer := time.NewTimer(dur)
		var derr error
		if s.During != nil {
			derr = s.During(ctx)
		}
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
		}
		// Heal even if the context ended, so that no fault outlives the run.
		herr := f.Heal(context.WithoutCancel(ctx))
		r.Healed = time.Now()
		switch {
		case herr != nil:
			return rounds, fmt.Errorf("round %d: healing %s: %w", n, f.Desc, herr)
		case derr != nil:
			return rounds, fmt.Errorf("round %d: during %s: %w", n, f.Desc, derr)
		case ctx.Err() != nil:
			return rounds, fmt.Errorf("round %d: %w", n, ctx.Err())
		}
		if s.Settle != nil {
			if err := s.Settle(ctx); err != nil {
				return rounds, fmt.Errorf("round %d: settling after %s: %w", n, f.Desc, err)
			}
		}
		r.Settled = time.Now()
		logf("jepsen: %v", r)
		rounds = append(rounds, r)
	}
	return rounds, nil
}
