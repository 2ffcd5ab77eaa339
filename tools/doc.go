// Package tools holds no code, only a test of the tool modules beside it: each tool that
// `make test` builds (buf, grpcurl, pebble) is pinned in a go.mod of its own, and the test keeps
// the modules they share with tuturu at tuturu's versions, so the Go build cache compiles those
// packages once for both.
package tools
