// Package archtest holds no code, only tests: they check the import rules of
// docs/architecture.md ("Import rules") on every package of the module, as `go list` sees them,
// and on the imports of the web client, so the layering is proven on each `go test ./...`
// rather than hoped for.
package archtest
