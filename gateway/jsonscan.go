package gateway

import (
	"encoding/json"
	"errors"
)

// A single-pass scanner for the top-level JSON object of a browser message. encoding/json
// validates a message and then decodes it, a second full pass, and is slow on SDP's many
// escapes (profiled: 55 µs for a 3 KB offer). This scanner validates exactly the JSON grammar
// (RFC 8259; FuzzDecodeBrowser checks it against encoding/json) in one pass and hands back the
// raw bytes of each top-level member, which the relay needs anyway.

// maxJSONDepth bounds nesting, so a hostile message cannot exhaust the stack.
const maxJSONDepth = 64

var (
	errJSONSyntax = errors.New("not valid JSON")
	errJSONDepth  = errors.New("JSON nested too deeply")
)

type jsonScanner struct {
	b []byte
	i int
}

// scanObject validates b as one JSON object (surrounding whitespace allowed) and calls field
// for each member with the key's raw bytes (without quotes), whether the key has escapes, and
// the value's raw bytes.
func scanObject(b []byte, field func(key []byte, escaped bool, val []byte)) error {
	s := jsonScanner{b: b}
	s.ws()
	if !s.eat('{') {
		return errJSONSyntax
	}
	s.ws()
	if !s.eat('}') {
		for {
			s.ws()
			start := s.i
			escaped, err := s.str()
			if err != nil {
				return err
			}
			key := b[start+1 : s.i-1]
			s.ws()
			if !s.eat(':') {
				return errJSONSyntax
			}
			s.ws()
			vstart := s.i
			if err := s.value(1); err != nil {
				return err
			}
			field(key, escaped, b[vstart:s.i])
			s.ws()
			if s.eat(',') {
				continue
			}
			if s.eat('}') {
				break
			}
			return errJSONSyntax
		}
	}
	s.ws()
	if s.i != len(b) {
		return errJSONSyntax
	}
	return nil
}

func (s *jsonScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *jsonScanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// value scans one value starting at s.i (no leading whitespace).
func (s *jsonScanner) value(depth int) error {
	if s.i >= len(s.b) {
		return errJSONSyntax
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, err := s.str()
		return err
	case c == '{', c == '[':
		if depth >= maxJSONDepth {
			return errJSONDepth
		}
		s.i++
		if c == '[' {
			return s.items(']', func() error { return s.value(depth + 1) })
		}
		return s.items('}', func() error {
			if _, err := s.str(); err != nil {
				return err
			}
			s.ws()
			if !s.eat(':') {
				return errJSONSyntax
			}
			s.ws()
			return s.value(depth + 1)
		})
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	}
	return errJSONSyntax
}

// items scans the comma-separated items of an object or array, after its opening bracket,
// through the closing one.
func (s *jsonScanner) items(closing byte, item func() error) error {
	s.ws()
	if s.eat(closing) {
		return nil
	}
	for {
		s.ws()
		if err := item(); err != nil {
			return err
		}
		s.ws()
		if s.eat(',') {
			continue
		}
		if s.eat(closing) {
			return nil
		}
		return errJSONSyntax
	}
}

func (s *jsonScanner) literal(lit string) error {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return errJSONSyntax
	}
	s.i += len(lit)
	return nil
}

// str scans a string starting at its opening quote and reports whether it has escapes.
func (s *jsonScanner) str() (escaped bool, err error) {
	if !s.eat('"') {
		return false, errJSONSyntax
	}
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return escaped, nil
		case c == '\\':
			escaped = true
			if s.i+1 >= len(s.b) {
				return false, errJSONSyntax
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if len(s.b)-s.i < 6 || !isHex(s.b[s.i+2]) || !isHex(s.b[s.i+3]) || !isHex(s.b[s.i+4]) || !isHex(s.b[s.i+5]) {
					return false, errJSONSyntax
				}
				s.i += 6
			default:
				return false, errJSONSyntax
			}
		case c < 0x20:
			return false, errJSONSyntax // control characters must be escaped
		default:
			s.i++
		}
	}
	return false, errJSONSyntax
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *jsonScanner) number() error {
	s.eat('-')
	if s.eat('0') {
		// no more integer digits after a leading zero
	} else if s.digits() == 0 {
		return errJSONSyntax
	}
	if s.eat('.') && s.digits() == 0 {
		return errJSONSyntax
	}
	if s.eat('e') || s.eat('E') {
		if !s.eat('+') {
			s.eat('-')
		}
		if s.digits() == 0 {
			return errJSONSyntax
		}
	}
	return nil
}

func (s *jsonScanner) digits() int {
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

// jsonKey returns a member key as text, decoding escapes only when there are any.
func jsonKey(raw []byte, escaped bool) string {
	if !escaped {
		return string(raw)
	}
	var s string
	if err := json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &s); err != nil {
		return ""
	}
	return s
}
