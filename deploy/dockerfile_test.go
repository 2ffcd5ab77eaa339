package deploy

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// instruction is one Dockerfile instruction with its continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, COPY, ...
	args string
	line int
}

type stage struct {
	from, name string
	instrs     []instruction
}

type dockerfile struct {
	syntax string
	stages []stage
}

// parseDockerfile is a small parser for the subset of the Dockerfile syntax we use: parser
// directives, comments, line continuations and FROM ... AS stages.
func parseDockerfile(t *testing.T) dockerfile {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		df      dockerfile
		pending strings.Builder
		start   int
		header  = true
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			// Parser directives only count before anything else.
			if k, v, ok := strings.Cut(strings.TrimSpace(trimmed[1:]), "="); ok && header && k == "syntax" {
				df.syntax = v
			}
			continue
		}
		header = false
		if trimmed == "" && pending.Len() == 0 {
			continue
		}
		if pending.Len() == 0 {
			start = n
		}
		if cont, ok := strings.CutSuffix(trimmed, `\`); ok {
			pending.WriteString(cont + " ")
			continue
		}
		pending.WriteString(trimmed)
		text := strings.Join(strings.Fields(pending.String()), " ")
		pending.Reset()
		cmd, args, _ := strings.Cut(text, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: args, line: start}
		if in.cmd == "FROM" {
			fields := strings.Fields(args)
			st := stage{from: fields[0]}
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				st.name = fields[2]
			}
			df.stages = append(df.stages, st)
			continue
		}
		if len(df.stages) == 0 {
			t.Fatalf("Dockerfile:%d: %s before the first FROM", start, in.cmd)
		}
		s := &df.stages[len(df.stages)-1]
		s.instrs = append(s.instrs, in)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if pending.Len() > 0 {
		t.Fatal("Dockerfile ends inside a line continuation")
	}
	return df
}

func (s stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.instrs {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// exec parses the JSON (exec) form of an instruction's arguments; the shell form would need a
// shell the final image does not have.
func execForm(t *testing.T, in instruction, args string) []string {
	t.Helper()
	var argv []string
	if err := json.Unmarshal([]byte(args), &argv); err != nil {
		t.Errorf("Dockerfile:%d: %s %s is not in exec (JSON) form: %v", in.line, in.cmd, args, err)
	}
	return argv
}

func TestDockerfile(t *testing.T) {
	df := parseDockerfile(t)
	if df.syntax == "" {
		t.Error("Dockerfile: no '# syntax=' directive: RUN --mount needs the BuildKit frontend")
	}
	if len(df.stages) != 2 {
		t.Fatalf("Dockerfile has %d stages, want 2 (build, final)", len(df.stages))
	}
	build, final := df.stages[0], df.stages[1]

	// Build stage: Go from the official image, static, reproducible paths, cached modules.
	if !strings.HasPrefix(build.from, "golang:1.26") || build.name == "" {
		t.Errorf("build stage FROM %s AS %q, want golang:1.26 with a name", build.from, build.name)
	}
	var compile string
	for _, in := range build.all("RUN") {
		if strings.Contains(in.args, "go build") {
			compile = in.args
		}
	}
	for _, want := range []string{
		"--mount=type=cache,target=/go/pkg/mod",
		"--mount=type=cache,target=/root/.cache/go-build",
		"CGO_ENABLED=0",
		"-trimpath",
		"./cmd/tuturu",
	} {
		if !strings.Contains(compile, want) {
			t.Errorf("build stage: the go build RUN lacks %q: %s", want, compile)
		}
	}

	// Final stage: minimal, no shell, non-root, the one binary.
	if !(strings.HasPrefix(final.from, "gcr.io/distroless/static") && strings.HasSuffix(final.from, ":nonroot")) && final.from != "scratch" {
		t.Errorf("final stage FROM %s, want distroless static nonroot (or scratch)", final.from)
	}
	if runs := final.all("RUN"); len(runs) > 0 {
		t.Errorf("Dockerfile:%d: RUN in the final stage: the image has no shell", runs[0].line)
	}
	copied := false
	for _, in := range final.all("COPY") {
		if strings.Contains(in.args, "--from="+build.name) && strings.HasSuffix(in.args, " /tuturu") {
			copied = true
		}
	}
	if !copied {
		t.Errorf("final stage does not COPY --from=%s the binary to /tuturu", build.name)
	}
	users := final.all("USER")
	if len(users) == 0 {
		t.Error("final stage has no USER: it would run as root")
	} else if u := strings.Split(users[len(users)-1].args, ":")[0]; u == "root" || u == "0" {
		t.Errorf("final stage USER %s is root", users[len(users)-1].args)
	}
	eps := final.all("ENTRYPOINT")
	if len(eps) != 1 {
		t.Fatalf("final stage has %d ENTRYPOINTs, want 1", len(eps))
	}
	if argv := execForm(t, eps[0], eps[0].args); len(argv) != 1 || argv[0] != "/tuturu" {
		t.Errorf(`ENTRYPOINT %s, want ["/tuturu"]`, eps[0].args)
	}
	hcs := final.all("HEALTHCHECK")
	if len(hcs) != 1 {
		t.Fatalf("final stage has %d HEALTHCHECKs, want 1", len(hcs))
	}
	_, cmd, ok := strings.Cut(hcs[0].args, "CMD ")
	argv := execForm(t, hcs[0], cmd)
	if !ok || len(argv) < 4 || argv[0] != "/tuturu" || argv[1] != "healthcheck" || argv[2] != "-addr" {
		t.Errorf("HEALTHCHECK %s, want CMD [\"/tuturu\", \"healthcheck\", \"-addr\", ...]", hcs[0].args)
	}

	// Small enough to read at a glance.
	if n := len(build.instrs) + len(final.instrs); n > 16 {
		t.Errorf("Dockerfile has %d instructions; keep it short", n)
	}
}

// TestDockerignore checks that the build context keeps every file `go build ./cmd/tuturu`
// reads (Go sources, embedded files, go.mod/go.sum) and drops what must not be in it.
func TestDockerignore(t *testing.T) {
	t.Parallel()
	patterns := readDockerignore(t)
	for _, p := range []string{".git/config", "data/admin.token", "bin/tuturu", "compose.yaml"} {
		if !ignored(patterns, p) {
			t.Errorf(".dockerignore keeps %s in the build context", p)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "list", "-deps",
		"-f", `{{if .Module}}{{if .Module.Main}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{end}}{{end}}`,
		"../cmd/tuturu").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	abs := mustAbs(t, root)
	inputs := []string{"go.mod", "go.sum"}
	for _, f := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(abs, f)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, filepath.ToSlash(rel))
	}
	if len(inputs) < 10 {
		t.Fatalf("go list found only %v", inputs)
	}
	for _, f := range inputs {
		if ignored(patterns, f) {
			t.Errorf(".dockerignore drops %s, which the build needs", f)
		}
	}
}

func readDockerignore(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// ignored applies .dockerignore rules as Docker does: patterns are relative to the context
// root, a match on a directory covers everything under it, `**` spans any number of
// directories, and a later `!pattern` re-includes.
func ignored(patterns []string, file string) bool {
	out := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		p = path.Clean(strings.TrimPrefix(strings.TrimPrefix(p, "!"), "/"))
		segs := strings.Split(file, "/")
		for i := 1; i <= len(segs); i++ {
			if globMatch(strings.Split(p, "/"), segs[:i]) {
				out = !neg
				break
			}
		}
	}
	return out
}

func globMatch(pattern, name []string) bool {
	if len(pattern) == 0 {
		return len(name) == 0
	}
	if pattern[0] == "**" {
		for i := 0; i <= len(name); i++ {
			if globMatch(pattern[1:], name[i:]) {
				return true
			}
		}
		return false
	}
	if len(name) == 0 {
		return false
	}
	ok, err := path.Match(pattern[0], name[0])
	return err == nil && ok && globMatch(pattern[1:], name[1:])
}

func TestDockerignoreMatcher(t *testing.T) {
	for _, tc := range []struct {
		patterns []string
		file     string
		want     bool
	}{
		{[]string{".git"}, ".git/HEAD", true},
		{[]string{"**/*_test.go"}, "gateway/gateway_test.go", true},
		{[]string{"**/*_test.go"}, "x_test.go", true},
		{[]string{"**/*_test.go"}, "gateway/gateway.go", false},
		{[]string{"*.md"}, "docs/x.md", false},
		{[]string{"docs", "!docs/keep.md"}, "docs/keep.md", false},
		{[]string{"web"}, "web/static/index.html", true},
	} {
		if got := ignored(tc.patterns, tc.file); got != tc.want {
			t.Errorf("ignored(%q, %q) = %v, want %v", tc.patterns, tc.file, got, tc.want)
		}
	}
}
