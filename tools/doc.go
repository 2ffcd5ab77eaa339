// Package tools holds no code, only tests of the tool modules beside it: each tool that
// `make test` builds (buf, grpcurl, pebble) keeps the modules it shares with tuturu at tuturu's
// versions, so the Go build cache compiles those packages once for both; and the Helm CLI in
// tools/helm is the Helm whose packages deploy's chart checks use.
package tools
