package platform

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
	"github.com/tuturu/tuturu/gen/tuturu/room/v1/roomv1connect"
)

// writeEnvelopes writes each payload the way connect does: prefix and payload as two writes.
func writeEnvelopes(w *io.PipeWriter, payloads [][]byte) {
	for _, p := range payloads {
		var prefix [envelopeHeader]byte
		binary.BigEndian.PutUint32(prefix[1:], uint32(len(p)))
		if _, err := w.Write(prefix[:]); err != nil {
			return
		}
		if len(p) > 0 {
			if _, err := w.Write(p); err != nil {
				return
			}
		}
	}
	_ = w.Close()
}

func envelopeSizes() [][]byte {
	var out [][]byte
	for i, n := range []int{0, 1, 100, 3000, 16379, 16380, 40000, 2} {
		out = append(out, bytes.Repeat([]byte{byte('a' + i)}, n))
	}
	return out
}

// With the HTTP/2 client's 16 KiB buffer, every message that fits comes out of one Read
// (prefix and payload together); larger ones come in pieces; the bytes never change.
func TestEnvelopeBodyReadsWholeMessages(t *testing.T) {
	payloads := envelopeSizes()
	var want bytes.Buffer
	for _, p := range payloads {
		var prefix [envelopeHeader]byte
		binary.BigEndian.PutUint32(prefix[1:], uint32(len(p)))
		want.Write(prefix[:])
		want.Write(p)
	}
	for _, bufSize := range []int{16384, 4, 5, 7} {
		pr, pw := io.Pipe()
		go writeEnvelopes(pw, payloads)
		body := &envelopeBody{body: pr}
		var got bytes.Buffer
		buf := make([]byte, bufSize)
		var reads []int
		for range 100000 {
			n, err := body.Read(buf)
			got.Write(buf[:n])
			if n > 0 {
				reads = append(reads, n)
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("buffer %d: %v", bufSize, err)
			}
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("buffer %d: %d bytes out, want %d identical bytes", bufSize, got.Len(), want.Len())
		}
		if bufSize == 16384 {
			// 0, 1, 100, 3000, 16379 fit whole; 16380 needs two reads, 40000 three; 2 fits.
			wantReads := []int{5, 6, 105, 3005, 16384, 16384, 1, 16384, 16384, 7237, 7}
			if !equalInts(reads, wantReads) {
				t.Errorf("reads %v, want %v", reads, wantReads)
			}
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A stream cut inside a message is an error, not a clean end.
func TestEnvelopeBodyTruncated(t *testing.T) {
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte{0, 0, 0, 0, 10})
		_, _ = pw.Write([]byte("abc"))
		_ = pw.Close()
	}()
	body := &envelopeBody{body: pr}
	buf := make([]byte, 64)
	if _, err := body.Read(buf); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated message: %v, want unexpected EOF", err)
	}
}

// echoJoin sends every signal it receives straight back.
type echoJoin struct {
	roomv1connect.UnimplementedRoomServiceHandler
}

func (echoJoin) Join(_ context.Context, s *connect.BidiStream[roomv1.JoinRequest, roomv1.JoinResponse]) error {
	for {
		req, err := s.Receive()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		sig := req.GetSignal()
		if err := s.Send(&roomv1.JoinResponse{Event: &roomv1.JoinResponse_Signal{Signal: &roomv1.SignalReceived{Type: sig.GetType(), Data: sig.GetData()}}}); err != nil {
			return err
		}
	}
}

func startEcho(tb testing.TB) string {
	tb.Helper()
	mux := http.NewServeMux()
	mux.Handle(roomv1connect.NewRoomServiceHandler(echoJoin{}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: mux, Protocols: protocols, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// Streams through NewH2CClient carry every message intact, small and larger than a frame,
// over Connect, gRPC and gRPC-Web.
func TestStreamsThroughWholeMessages(t *testing.T) {
	base := startEcho(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for name, opts := range map[string][]connect.ClientOption{"connect": nil, "grpc": {connect.WithGRPC()}, "grpc-web": {connect.WithGRPCWeb()}} {
		stream := roomv1connect.NewRoomServiceClient(NewH2CClient(), base, opts...).Join(ctx)
		for i, data := range envelopeSizes() {
			if err := stream.Send(&roomv1.JoinRequest{Msg: &roomv1.JoinRequest_Signal{Signal: &roomv1.Signal{Type: "t", Data: data}}}); err != nil {
				t.Fatalf("%s: send %d: %v", name, i, err)
			}
			ev, err := stream.Receive()
			if err != nil {
				t.Fatalf("%s: receive %d: %v", name, i, err)
			}
			if !bytes.Equal(ev.GetSignal().GetData(), data) {
				t.Fatalf("%s: message %d came back as %d bytes, want %d", name, i, len(ev.GetSignal().GetData()), len(data))
			}
		}
		_ = stream.CloseRequest()
		if _, err := stream.Receive(); !errors.Is(err, io.EOF) {
			t.Errorf("%s: after close, Receive gave %v, want EOF", name, err)
		}
		_ = stream.CloseResponse()
	}
}

// processCPU is the CPU time (user and system) this process has used: client and server
// both run in it, so its growth per op is what a message costs the machine.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkStreamRoundTrip: one small message (an ICE candidate's size) to a real h2c server
// and back, per op. -run none -bench StreamRoundTrip compares the wrapped client (whole) with
// the bare transport (split).
func BenchmarkStreamRoundTrip(b *testing.B) {
	base := startEcho(b)
	data := bytes.Repeat([]byte("c"), 200)
	for name, client := range map[string]*http.Client{
		"whole": NewH2CClient(),
		"split": {Transport: NewH2CTransport()},
	} {
		b.Run(name, func(b *testing.B) {
			stream := roomv1connect.NewRoomServiceClient(client, base, connect.WithAcceptCompression("gzip", nil, nil)).Join(context.Background())
			msg := &roomv1.JoinRequest{Msg: &roomv1.JoinRequest_Signal{Signal: &roomv1.Signal{Type: "ice-candidate", Data: data}}}
			b.ReportAllocs()
			cpu := processCPU(b)
			for b.Loop() {
				if err := stream.Send(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := stream.Receive(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((processCPU(b)-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
			_ = stream.CloseRequest()
			_ = stream.CloseResponse()
		})
	}
}

func TestEnvelopeFramed(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/connect+proto":       true,
		"application/connect+json":        true,
		"application/grpc":                true,
		"application/grpc+proto":          true,
		"application/grpc-web+proto":      true,
		"application/grpc-web-text":       false,
		"application/grpc-web-text+proto": false,
		"application/proto":               false,
		"application/json":                false,
		"":                                false,
	} {
		if got := envelopeFramed(ct); got != want {
			t.Errorf("envelopeFramed(%q) = %v, want %v", ct, got, want)
		}
	}
}
