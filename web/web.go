// Package web embeds the browser client so the gateway can serve it without a build step.
package web

import (
	"embed"
	"io/fs"
)

//go:embed static
var files embed.FS

// Files returns the browser client's file tree, rooted at its index.html.
func Files() fs.FS {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // "static" is fixed at compile time; Sub fails only on a malformed name
	}
	return sub
}
