package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// listedPackage is what the import rules need from one `go list -json` record.
type listedPackage struct {
	ImportPath   string
	Dir          string
	ForTest      string
	Module       *struct{ Path string }
	GoFiles      []string
	CgoFiles     []string
	TestGoFiles  []string
	XTestGoFiles []string
	Imports      []string
	TestImports  []string
	XTestImports []string
	Error        *struct{ Err string }
}

// goCommand runs the go command in dir and returns its standard output.
func goCommand(t *testing.T, dir string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// modulePackages lists the module's own packages with their imports. -deps -test makes go
// list load every package a test of the module reaches too; test variants ("p [p.test]") and
// test mains ("p.test") repeat what the plain records already say, so only those are kept.
func modulePackages(t *testing.T) (module, root string, pkgs []listedPackage) {
	t.Helper()
	mod := strings.Fields(string(goCommand(t, ".", "list", "-m", "-f", "{{.Path}} {{.Dir}}")))
	if len(mod) != 2 {
		t.Fatalf("go list -m: unexpected output %q", mod)
	}
	module, root = mod[0], mod[1]
	dec := json.NewDecoder(bytes.NewReader(goCommand(t, root, "list", "-e", "-deps", "-test", "-json", "./...")))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list -json: %v", err)
		}
		if p.Module == nil || p.Module.Path != module || p.ForTest != "" ||
			strings.Contains(p.ImportPath, " [") || strings.HasSuffix(p.ImportPath, ".test") {
			continue
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatalf("go list found no package of %s", module)
	}
	return module, root, pkgs
}

// relative turns an import path into a module-relative one; ok is false outside the module.
func relative(module, path string) (rel string, ok bool) {
	if path == module {
		return "", true
	}
	rel, ok = strings.CutPrefix(path, module+"/")
	return rel, ok
}

// importSite finds the file (and line) among files in dir that imports path.
func importSite(dir string, files []string, path string) string {
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ImportsOnly)
		if err != nil {
			continue
		}
		for _, spec := range f.Imports {
			if p, err := strconv.Unquote(spec.Path.Value); err == nil && p == path {
				return fmt.Sprintf("%s:%d", name, fset.Position(spec.Pos()).Line)
			}
		}
	}
	return "(file not found)"
}

// TestImportRules checks every import of every package of the module against the rules in
// rules_test.go and names each import that breaks one, with its file and line.
func TestImportRules(t *testing.T) {
	module, root, pkgs := modulePackages(t)
	checked := 0
	for _, p := range pkgs {
		rel, _ := relative(module, p.ImportPath)
		if p.Error != nil {
			t.Errorf("%s: go list could not read its imports, so they are unchecked: %s", p.ImportPath, p.Error.Err)
		}
		for _, group := range []struct {
			kind    importKind
			imports []string
			files   []string
		}{
			{codeImport, p.Imports, append(append([]string{}, p.GoFiles...), p.CgoFiles...)},
			{testImport, p.TestImports, p.TestGoFiles},
			{xtestImport, p.XTestImports, p.XTestGoFiles},
		} {
			for _, imp := range group.imports {
				impRel, ok := relative(module, imp)
				if !ok {
					continue
				}
				checked++
				if rule := broken(rel, group.kind, impRel); rule != "" {
					dir, _ := filepath.Rel(root, p.Dir)
					t.Errorf("%s: imports %s: %s (%s)",
						filepath.ToSlash(filepath.Join(dir, importSite(p.Dir, group.files, imp))), imp, rule, docRef)
				}
			}
		}
	}
	// A module whose packages import nothing of one another means go list was misread.
	if checked == 0 {
		t.Fatalf("no import between the module's %d packages was seen", len(pkgs))
	}
}

// TestImportRulesCatchViolations proves each rule refuses what it should and allows the
// imports the module needs.
func TestImportRulesCatchViolations(t *testing.T) {
	for _, c := range []struct {
		pkg  string
		kind importKind
		imp  string
		ok   bool
	}{
		{"roomsvc", codeImport, "credsvc", false},
		{"roomsvc", testImport, "credsvc", false},
		{"credsvc", xtestImport, "turnsvc/peerpolicy", false},
		{"gateway/edge", codeImport, "roomsvc", false},
		{"gateway", codeImport, "gateway/edge", true},
		{"credsvc", xtestImport, "credsvc", true},
		{"roomsvc", codeImport, "gen/tuturu/cred/v1/credv1connect", true},
		{"roomsvc", codeImport, "internal/platform", true},
		{"gateway", codeImport, "web", true},
		{"internal/platform", codeImport, "gateway", false},
		{"internal/platform", testImport, "roomsvc", false},
		{"internal/proxyproto", codeImport, "internal/platform", true},
		{"internal/platform", codeImport, "gen/tuturu/room/v1", false},
		{"internal/platform", testImport, "gen/tuturu/room/v1/roomv1connect", true},
		{"internal/platform", xtestImport, "gen/tuturu/cred/v1", true},
		{"gen/tuturu/room/v1", codeImport, "gen/tuturu/cred/v1", true},
		{"gen/tuturu/room/v1", codeImport, "internal/platform", false},
		{"gen/tuturu/room/v1", codeImport, "roomsvc", false},
		{"cmd/tuturu", codeImport, "gateway", true},
		{"cmd/tuturu", codeImport, "turnsvc", true},
		{"cmd/tuturu", testImport, "roomsvc", true},
		{"e2e", testImport, "roomsvc", true},
		{"e2e", xtestImport, "gateway/edge", true},
		{"e2e", codeImport, "roomsvc", false},
		{"deploy", testImport, "credsvc", false},
		{"deploy", testImport, "gen/tuturu/cred/v1", true},
		{"loadtest", codeImport, "gateway", false},
		{"web", codeImport, "gateway", false},
		{"newpkg", codeImport, "roomsvc", false},
		{"", codeImport, "credsvc", false},
	} {
		rule := broken(c.pkg, c.kind, c.imp)
		if (rule == "") != c.ok {
			t.Errorf("%s (%s) importing %s: allowed = %v, want %v (rule %q)", c.pkg, c.kind, c.imp, rule == "", c.ok, rule)
		}
	}
}
