package gateway

import (
	"context"

	"go.opentelemetry.io/otel/metric"

	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
)

// dialect is what differs between the browser and the Flutter protocol on one socket: what
// the client's messages mean and how events and errors look to it. The rest (reading frames,
// limits, the membership in roomsvc, the event queue, closing) is the session's.
type dialect interface {
	// handle decodes one text frame and acts on it; false ends the session.
	handle(ctx context.Context, data []byte) bool
	// errorFrame encodes an error in the dialect's own shape.
	errorFrame(e wireError) []byte
	// deliver writes one roomsvc event to the client (on the pump goroutine).
	deliver(ev *roomv1.MemberEvent)
	// resumable says whether the client can take back its slot after a dropped socket; when
	// it cannot, a drop is a leave, so the others are told at once.
	resumable() bool
	// metricAttr is the dialect label of tuturu.gateway.connections.
	metricAttr() metric.MeasurementOption
}

// wireError is an error for the client; each dialect encodes it its own way.
type wireError struct {
	Request      string // the message type that failed, when there is one (Flutter's "request")
	Text         string // human text
	Code         string // machine code (codeX)
	RetryAfterMs int64  // set for rate limits
	SupportCode  string // set by sendError: what the user reads out to support
}

// isFlutterFirstFrame says whether a socket's first frame starts the Flutter dialect: a JSON
// object whose type is "new". Anything else is the browser dialect, which answers unknown
// types itself.
func isFlutterFirstFrame(b []byte) bool {
	var typ []byte
	err := scanObject(b, func(key []byte, escaped bool, val []byte) {
		if escaped {
			key = []byte(jsonKey(key, escaped))
		}
		if string(key) == "type" {
			typ = val
		}
	})
	if err != nil {
		return false
	}
	t, ok := jsonString(typ)
	return ok && t == flutterNew
}
