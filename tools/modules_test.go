package tools

import (
	"encoding/json"
	"os/exec"
	"testing"

	"golang.org/x/mod/semver"
)

// testedTools are the tool modules `make test` builds on every clean machine. helm and jaeger
// are built only by opt-in targets, so their requirements are left as their own releases pin.
var testedTools = []string{"buf", "grpcurl", "pebble"}

// requirements reads a go.mod's requirements as `go mod edit -json` reports them.
func requirements(t *testing.T, gomod string) map[string]string {
	t.Helper()
	out, err := exec.Command("go", "mod", "edit", "-json", gomod).Output()
	if err != nil {
		t.Fatalf("go mod edit -json %s: %v", gomod, err)
	}
	var parsed struct {
		Require []struct{ Path, Version string }
	}
	if err := json.Unmarshal(out, &parsed); err != nil {
		t.Fatalf("decode go mod edit -json %s: %v", gomod, err)
	}
	versions := make(map[string]string, len(parsed.Require))
	for _, r := range parsed.Require {
		versions[r.Path] = r.Version
	}
	return versions
}

// A package compiled for a tool lands in the build cache under a key that covers the versions
// of everything it imports, so grpc built for grpcurl is reused by tuturu's tests only when
// x/net, genproto and the rest match too. A tool may need a newer version than tuturu (buf's
// protobuf); an older one is never needed and only makes a cold `make test` compile twice.
func TestToolsRequireNoOlderVersionThanTuturu(t *testing.T) {
	t.Parallel()
	tuturu := requirements(t, "../go.mod")
	if len(tuturu) == 0 {
		t.Fatal("../go.mod lists no requirements")
	}
	for _, tool := range testedTools {
		gomod := tool + "/go.mod"
		required := requirements(t, gomod)
		if len(required) == 0 {
			t.Fatalf("%s lists no requirements", gomod)
		}
		for path, version := range required {
			ours, shared := tuturu[path]
			if shared && semver.Compare(version, ours) < 0 {
				t.Errorf("%s requires %s %s, older than go.mod's %s: raise it with "+
					"`cd tools/%s && go get %s@%s && go mod tidy`", gomod, path, version, ours, tool, path, ours)
			}
		}
	}
}
