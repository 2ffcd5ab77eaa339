package main

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/tuturu/tuturu/internal/platform"
)

// The README's configuration table must name every variable the binary reads.
func TestREADMEDocumentsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	v := platform.NewVars(flag.NewFlagSet("all", flag.ContinueOnError), func(string) string { return "" })
	var cfg configs
	cfg.bind(v, "all")
	for _, env := range v.EnvNames() {
		if !strings.Contains(string(readme), "`"+env+"`") {
			t.Errorf("README.md does not document `%s`", env)
		}
	}
}
