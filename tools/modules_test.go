package tools

import (
	"os"
	"testing"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/semver"
)

// testedTools are the tool modules `make test` builds on every clean machine. helm and jaeger
// are built only by opt-in targets, so their requirements are left as their own releases pin.
var testedTools = []string{"buf", "grpcurl", "pebble"}

// requirements reads a go.mod's requirements: module path to version.
func requirements(t *testing.T, gomod string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(gomod)
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.Parse(gomod, data, nil)
	if err != nil {
		t.Fatalf("parse %s: %v", gomod, err)
	}
	if len(f.Require) == 0 {
		t.Fatalf("%s lists no requirements", gomod)
	}
	versions := make(map[string]string, len(f.Require))
	for _, r := range f.Require {
		versions[r.Mod.Path] = r.Mod.Version
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
	for _, tool := range testedTools {
		gomod := tool + "/go.mod"
		for path, version := range requirements(t, gomod) {
			ours, shared := tuturu[path]
			if shared && semver.Compare(version, ours) < 0 {
				t.Errorf("%s requires %s %s, older than go.mod's %s: raise it with "+
					"`cd tools/%s && go get %s@%s && go mod tidy`", gomod, path, version, ours, tool, path, ours)
			}
		}
	}
}

// TestHelmLibraryMatchesCLI: deploy's chart checks render with Helm's packages from go.mod;
// operators install with the CLI from tools/helm/go.mod. Both must be the same Helm.
func TestHelmLibraryMatchesCLI(t *testing.T) {
	t.Parallel()
	const helm = "helm.sh/helm/v4"
	lib, cli := requirements(t, "../go.mod")[helm], requirements(t, "helm/go.mod")[helm]
	if lib == "" || cli == "" {
		t.Fatalf("%s: go.mod requires %q, tools/helm/go.mod %q; both must require it", helm, lib, cli)
	}
	if lib != cli {
		t.Fatalf("go.mod has Helm %s, tools/helm/go.mod %s: pin the same version in both", lib, cli)
	}
}
