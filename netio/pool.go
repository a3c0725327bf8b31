package netio

import (
	"math/bits"
	"sync"
)

// Buffers are pooled by power-of-two size class, from 512 B to 16 MiB.
// Larger buffers are allocated exactly and left to the garbage collector, so a
// rare huge frame does not pin memory.
const (
	minClass = 9
	maxClass = 24
)

var bufPools [maxClass + 1]sync.Pool

// getBuf returns a buffer of length n. Its capacity is n rounded up to a size
// class when n is poolable. Return it with putBuf.
func getBuf(n int) *[]byte {
	c := minClass
	if n > 1<<minClass {
		c = bits.Len(uint(n - 1))
	}
	if c > maxClass {
		b := make([]byte, n)
		return &b
	}
	if v := bufPools[c].Get(); v != nil {
		bp := v.(*[]byte)
		*bp = (*bp)[:n]
		return bp
	}
	b := make([]byte, n, 1<<c)
	return &b
}

// putBuf returns bp to the pool of the largest class its capacity covers.
// The caller must not use *bp afterwards.
func putBuf(bp *[]byte) {
	c := bits.Len(uint(cap(*bp))) - 1
	if c < minClass || c > maxClass {
		return
	}
	*bp = (*bp)[:0]
	bufPools[c].Put(bp)
}
