//go:build !linux

package main

import (
	"time"
)

func cpuOf([]int) time.Duration { return 0 }

func selfCPU() time.Duration { return 0 }

func machineBusy(d time.Duration) float64 { time.Sleep(d); return 0 }
