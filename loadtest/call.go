package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/coder/websocket"
)

// client is one signaling socket of the load tool.
type client struct {
	c *websocket.Conn
}

func dial(ctx context.Context, url string, hc *http.Client, origin string) (*client, error) {
	opts := &websocket.DialOptions{HTTPClient: hc, CompressionMode: websocket.CompressionDisabled}
	if origin != "" {
		opts.HTTPHeader = http.Header{"Origin": {origin}}
	}
	c, _, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	return &client{c: c}, nil
}

func (c *client) send(ctx context.Context, b []byte) error {
	if err := c.c.Write(ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

func (c *client) recv(ctx context.Context) ([]byte, error) {
	_, b, err := c.c.Read(ctx)
	if err != nil {
		return nil, fmt.Errorf("receive: %w", err)
	}
	return b, nil
}

// expectExact reads one message that must equal want byte for byte.
func (c *client) expectExact(ctx context.Context, want []byte) error {
	b, err := c.recv(ctx)
	if err != nil {
		return err
	}
	if !bytes.Equal(b, want) {
		return fmt.Errorf("%w: got %.120s, want %.120s", errMismatch, b, want)
	}
	return nil
}

// expectType reads one message of the given type.
func (c *client) expectType(ctx context.Context, typ string) error {
	b, err := c.recv(ctx)
	if err != nil {
		return err
	}
	var m struct {
		Type  string `json:"type"`
		Code  string `json:"code"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("%w: not JSON: %.120s", errMismatch, b)
	}
	if m.Type == "error" {
		return &serverError{code: m.Code, text: m.Error}
	}
	if m.Type != typ {
		return fmt.Errorf("%w: got %.120s, want type %s", errMismatch, b, typ)
	}
	return nil
}

var errMismatch = errors.New("unexpected message")

// serverError is an error message from the gateway; its code names the failure in the report.
type serverError struct{ code, text string }

func (e *serverError) Error() string { return e.code + ": " + e.text }

// call runs one call set-up and tear-down between two fresh sockets. It returns the set-up
// latency: from start (when the call was scheduled, so a late start counts against it) until
// the last candidate has arrived on both sides.
func call(ctx context.Context, start time.Time, url string, hc *http.Client, origin, pin string, p *payloads) (time.Duration, error) {
	a, err := dial(ctx, url, hc, origin)
	if err != nil {
		return 0, err
	}
	defer a.c.CloseNow()
	b, err := dial(ctx, url, hc, origin)
	if err != nil {
		return 0, err
	}
	defer b.c.CloseNow()

	steps := []func() error{
		func() error { return a.send(ctx, p.joinA(pin)) },
		func() error { return a.expectType(ctx, "join-pin") },
		func() error { return b.send(ctx, p.joinB(pin)) },
		func() error { return b.expectType(ctx, "join-pin") },
		func() error { return a.expectType(ctx, "peer-joined") },
		func() error { return a.send(ctx, p.offer.send) },
		func() error { return b.expectExact(ctx, p.offer.want) },
		func() error { return b.send(ctx, p.answer.send) },
		func() error { return a.expectExact(ctx, p.answer.want) },
		func() error {
			for i := range p.candsA {
				if err := a.send(ctx, p.candsA[i].send); err != nil {
					return err
				}
				if err := b.send(ctx, p.candsB[i].send); err != nil {
					return err
				}
			}
			return nil
		},
		func() error {
			for i := range p.candsA {
				if err := b.expectExact(ctx, p.candsA[i].want); err != nil {
					return err
				}
				if err := a.expectExact(ctx, p.candsB[i].want); err != nil {
					return err
				}
			}
			return nil
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return 0, err
		}
	}
	setup := time.Since(start)
	if err := a.send(ctx, p.leave); err != nil {
		return setup, err
	}
	if err := b.expectType(ctx, "peer-left"); err != nil {
		return setup, err
	}
	if err := a.c.Close(websocket.StatusNormalClosure, ""); err != nil {
		return setup, fmt.Errorf("close: %w", err)
	}
	if err := b.c.Close(websocket.StatusNormalClosure, ""); err != nil {
		return setup, fmt.Errorf("close: %w", err)
	}
	return setup, nil
}
