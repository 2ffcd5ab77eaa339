package platform

import (
	"encoding/binary"
	"io"
	"net/http"
	"strings"
)

// envelopeHeader is the size of the prefix of every message on a Connect, gRPC or gRPC-Web
// stream: one flags byte, then the message length as a big-endian uint32.
const envelopeHeader = 5

// wholeMessages is a RoundTripper that hands streaming request bodies to the HTTP/2 transport
// a whole message at a time.
//
// Why: connect writes each streamed message into the request pipe as two writes (the 5-byte
// prefix, then the message), and Go's HTTP/2 client turns every read of the body into its own
// DATA frame and flush — two frames and two write system calls per message, on the hop that
// carries every browser signal (the gateway's Join streams). Reading prefix and message
// together makes that one frame and one system call; the bytes on the wire are the same.
type wholeMessages struct{ next http.RoundTripper }

// WholeMessages wraps next so that streamed Connect, gRPC and gRPC-Web request bodies are sent
// one HTTP/2 DATA frame per message (see wholeMessages).
func WholeMessages(next http.RoundTripper) http.RoundTripper { return wholeMessages{next} }

func (w wholeMessages) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body == nil || req.Body == http.NoBody || req.ContentLength != -1 || !envelopeFramed(req.Header.Get("Content-Type")) {
		return w.next.RoundTrip(req)
	}
	r := *req // a RoundTripper must not modify the caller's request
	r.Body = &envelopeBody{body: req.Body}
	return w.next.RoundTrip(&r)
}

// envelopeFramed reports whether a content type's body is a sequence of enveloped messages
// in binary (grpc-web-text is base64 of them, so its bytes are not prefixes).
func envelopeFramed(contentType string) bool {
	switch {
	case strings.HasPrefix(contentType, "application/grpc-web-text"):
		return false
	case strings.HasPrefix(contentType, "application/connect+"), strings.HasPrefix(contentType, "application/grpc"):
		return true
	}
	return false
}

// envelopeBody returns at most one message per Read, and a whole one (prefix and payload)
// whenever it fits in the caller's buffer. Only the grouping of bytes into reads changes.
type envelopeBody struct {
	body        io.ReadCloser
	left        uint32 // payload bytes of the current message not yet returned
	passThrough bool   // the caller's buffer was too small for a prefix: just forward reads
}

func (b *envelopeBody) Read(p []byte) (int, error) {
	switch {
	case b.passThrough:
		return b.body.Read(p)
	case b.left > 0:
		n, err := io.ReadFull(b.body, p[:min(uint32(len(p)), b.left)])
		b.left -= uint32(n)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return n, err
	case len(p) < envelopeHeader:
		// At a message boundary, so forwarding from here on keeps the stream intact.
		b.passThrough = true
		return b.body.Read(p)
	}
	n, err := io.ReadFull(b.body, p[:envelopeHeader])
	if err != nil {
		return n, err // io.EOF between messages is the normal end of the stream
	}
	size := binary.BigEndian.Uint32(p[1:envelopeHeader])
	m, err := io.ReadFull(b.body, p[envelopeHeader:envelopeHeader+int(min(uint32(len(p)-envelopeHeader), size))])
	b.left = size - uint32(m)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF // the stream ended inside a message
	}
	return envelopeHeader + m, err
}

func (b *envelopeBody) Close() error { return b.body.Close() }
