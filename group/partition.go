package group

import "unicode/utf16"

// PartitionFor returns the __consumer_offsets partition that holds group id
// when the topic has n partitions (n >= 1): Kafka's
// Utils.abs(groupId.hashCode()) % n, where hashCode is Java's String.hashCode
// (s[0]*31^(k-1) + ... + s[k-1] over the string's UTF-16 code units, in
// wrapping int32 arithmetic) and Utils.abs maps math.MinInt32 to 0. A group
// lives on the same partition as in Kafka, so tools that compute it find it.
//
// id is taken as UTF-8, as Kafka decodes it from the wire; each byte of an
// invalid sequence counts as U+FFFD, which may differ from Java's decoder for
// some malformed input.
func PartitionFor(id string, n int32) int32 {
	h := javaStringHash(id)
	if h == -1<<31 {
		return 0
	}
	if h < 0 {
		h = -h
	}
	return h % n
}

// javaStringHash is java.lang.String.hashCode of s.
func javaStringHash(s string) int32 {
	var h int32
	for _, r := range s {
		if r >= 0x10000 {
			hi, lo := utf16.EncodeRune(r)
			h = 31*h + hi
			h = 31*h + lo
			continue
		}
		h = 31*h + r
	}
	return h
}
