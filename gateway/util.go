package gateway

import (
	"bytes"
	"encoding/json"
	"sync"
)

// Span names for the known types, built once so the hot path does not build a string per
// message.
var (
	signalSpanNames  = spanNames("signal ")
	deliverSpanNames = spanNames("deliver ")
)

func spanNames(prefix string) map[string]string {
	m := map[string]string{}
	for _, t := range []string{typeJoinPin, typeOffer, typeAnswer, typeICECandidate, typeLeave, typePing, typeResume, typeSelfTest, "peer-joined", "peer-left", "error", flutterNew, flutterCandidate, flutterBye, flutterPeers} {
		m[t] = prefix + t
	}
	return m
}

func spanName(names map[string]string, prefix, typ string) string {
	if n, ok := names[typ]; ok {
		return n
	}
	return prefix + typ
}

// mustJSON marshals values made only of strings and numbers, which cannot fail.
func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// Message buffers are pooled rather than kept per socket: an idle socket then holds none.
var bufferPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuffer keeps the rare large message's buffer out of the pool.
const maxPooledBuffer = 16 << 10

func getBuffer() *bytes.Buffer {
	b := bufferPool.Get().(*bytes.Buffer)
	b.Reset()
	return b
}

func putBuffer(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBuffer {
		bufferPool.Put(b)
	}
}
