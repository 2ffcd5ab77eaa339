package archtest

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// The web client is plain ES modules served as they are, with no build step and no bundler:
// an import of a package name ("lodash") or a URL (a CDN) would fail in the browser or fetch
// code from elsewhere, so every import is a relative path to a file under web/static. These
// tests read the import statements with a small JavaScript tokenizer (strings, template
// literals, comments and regular expressions skipped), not with a regexp over the text.

// jsToken is one token: an identifier or keyword ('i'), a string literal ('s', its value),
// punctuation ('p', one character, or "${" opening a template expression), a number ('n'), a
// regular expression ('r') or the end of a template literal ('t').
type jsToken struct {
	kind byte
	text string
	line int
}

// regexAfter are the keywords after which a '/' starts a regular expression, not a division.
var regexAfter = map[string]bool{
	"return": true, "typeof": true, "instanceof": true, "in": true, "of": true, "new": true,
	"delete": true, "void": true, "throw": true, "case": true, "do": true, "else": true,
	"yield": true, "await": true,
}

func isIdentByte(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// jsTokenize splits JavaScript source into tokens, dropping comments and whitespace.
func jsTokenize(src string) ([]jsToken, error) {
	var toks []jsToken
	line := 1
	i := 0
	// For each open template expression, the brace depth at which it closes.
	var templates []int
	depth := 0
	// scanTemplate reads template text from i (after '`' or an expression's '}') up to the
	// closing '`' or the next "${".
	scanTemplate := func(start int) error {
		for i < len(src) {
			switch c := src[i]; {
			case c == '\\':
				i += 2
				continue
			case c == '`':
				i++
				toks = append(toks, jsToken{'t', "`", line})
				return nil
			case c == '$' && i+1 < len(src) && src[i+1] == '{':
				i += 2
				toks = append(toks, jsToken{'p', "${", line})
				templates = append(templates, depth)
				depth++
				return nil
			case c == '\n':
				line++
			}
			i++
		}
		return fmt.Errorf("line %d: unterminated template literal", start)
	}
	for i < len(src) {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case strings.HasPrefix(src[i:], "//"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("line %d: unterminated comment", line)
			}
			line += strings.Count(src[i:i+2+end], "\n")
			i += end + 4
		case c == '\'' || c == '"':
			start := line
			var b strings.Builder
			for i++; ; i++ {
				if i >= len(src) || src[i] == '\n' {
					return nil, fmt.Errorf("line %d: unterminated string", start)
				}
				if src[i] == c {
					i++
					break
				}
				if src[i] == '\\' && i+1 < len(src) {
					i++
				}
				b.WriteByte(src[i])
			}
			toks = append(toks, jsToken{'s', b.String(), start})
		case c == '`':
			i++
			if err := scanTemplate(line); err != nil {
				return nil, err
			}
		case c == '}' && len(templates) > 0 && depth-1 == templates[len(templates)-1]:
			templates = templates[:len(templates)-1]
			depth--
			i++
			if err := scanTemplate(line); err != nil {
				return nil, err
			}
		case c == '/' && regexAllowed(toks):
			start := line
			inClass := false
			for i++; ; i++ {
				if i >= len(src) || src[i] == '\n' {
					return nil, fmt.Errorf("line %d: unterminated regular expression", start)
				}
				if src[i] == '\\' {
					i++
					continue
				}
				if src[i] == '[' {
					inClass = true
				} else if src[i] == ']' {
					inClass = false
				} else if src[i] == '/' && !inClass {
					i++
					break
				}
			}
			for i < len(src) && isIdentByte(src[i]) {
				i++ // flags
			}
			toks = append(toks, jsToken{'r', "", start})
		case c >= '0' && c <= '9':
			j := i
			for j < len(src) && (isIdentByte(src[j]) || src[j] == '.') {
				j++
			}
			toks = append(toks, jsToken{'n', src[i:j], line})
			i = j
		case isIdentByte(c):
			j := i
			for j < len(src) && isIdentByte(src[j]) {
				j++
			}
			toks = append(toks, jsToken{'i', src[i:j], line})
			i = j
		default:
			switch c {
			case '{':
				depth++
			case '}':
				depth--
			}
			toks = append(toks, jsToken{'p', string(c), line})
			i++
		}
	}
	if len(templates) > 0 {
		return nil, fmt.Errorf("unterminated template expression")
	}
	return toks, nil
}

// regexAllowed reports whether a '/' after toks starts a regular expression.
func regexAllowed(toks []jsToken) bool {
	if len(toks) == 0 {
		return true
	}
	prev := toks[len(toks)-1]
	switch prev.kind {
	case 'i':
		return regexAfter[prev.text]
	case 'p':
		return prev.text != ")" && prev.text != "]" && prev.text != "}"
	}
	return false
}

// jsImport is one module specifier a file loads; computed marks a dynamic import whose
// specifier is not a string literal (it cannot be checked, so it is refused).
type jsImport struct {
	spec     string
	line     int
	computed bool
}

// jsImports finds the static imports (import … from "x", import "x"), re-exports
// (export … from "x") and dynamic imports (import("x")) among toks.
func jsImports(toks []jsToken) []jsImport {
	at := func(i int) jsToken {
		if i >= 0 && i < len(toks) {
			return toks[i]
		}
		return jsToken{}
	}
	is := func(t jsToken, kind byte, text string) bool { return t.kind == kind && t.text == text }
	// fromClause looks for `from "x"` after an import or export clause starting at j; the
	// clause holds only names, braces, commas, '*' and string names.
	fromClause := func(j int) (jsImport, bool) {
		for ; j < len(toks); j++ {
			t := toks[j]
			if is(t, 'i', "from") && at(j+1).kind == 's' {
				return jsImport{spec: at(j + 1).text, line: at(j + 1).line}, true
			}
			if t.kind != 'i' && t.kind != 's' && !is(t, 'p', "{") && !is(t, 'p', "}") && !is(t, 'p', ",") && !is(t, 'p', "*") {
				return jsImport{}, false
			}
		}
		return jsImport{}, false
	}
	var out []jsImport
	for i, t := range toks {
		if t.kind != 'i' || (t.text != "import" && t.text != "export") || is(at(i-1), 'p', ".") {
			continue
		}
		next := at(i + 1)
		switch {
		case t.text == "import" && is(next, 'p', "("):
			if s := at(i + 2); s.kind == 's' && (is(at(i+3), 'p', ")") || is(at(i+3), 'p', ",")) {
				out = append(out, jsImport{spec: s.text, line: s.line})
			} else {
				out = append(out, jsImport{line: t.line, computed: true})
			}
		case t.text == "import" && next.kind == 's':
			out = append(out, jsImport{spec: next.text, line: next.line})
		case t.text == "import" && (next.kind == 'i' || is(next, 'p', "{") || is(next, 'p', "*")),
			t.text == "export" && (is(next, 'p', "{") || is(next, 'p', "*")):
			if imp, ok := fromClause(i + 1); ok {
				out = append(out, imp)
			}
		}
	}
	return out
}

// badImport says what is wrong with an import in file (a slash-separated path under static),
// given the files that exist there; "" when it is a relative path to one of them.
func badImport(file string, imp jsImport, exists func(string) bool) string {
	if imp.computed {
		return "a dynamic import with a computed specifier, which cannot be checked"
	}
	if !strings.HasPrefix(imp.spec, "./") && !strings.HasPrefix(imp.spec, "../") {
		return fmt.Sprintf("%q is not a relative path (no packages, no URLs: the client has no build step and loads only its own files)", imp.spec)
	}
	target := path.Join(path.Dir(file), imp.spec)
	if target == ".." || strings.HasPrefix(target, "../") {
		return fmt.Sprintf("%q leaves web/static, which is all the gateway serves", imp.spec)
	}
	if !exists(target) {
		return fmt.Sprintf("%q names no file under web/static", imp.spec)
	}
	return ""
}

// TestWebClientImportsOnlyItsOwnFiles checks every import of every script the gateway serves.
func TestWebClientImportsOnlyItsOwnFiles(t *testing.T) {
	static := filepath.Join("..", "..", "web", "static")
	root := os.DirFS(static)
	exists := func(name string) bool {
		st, err := fs.Stat(root, name)
		return err == nil && !st.IsDir()
	}
	scripts, imports := 0, 0
	err := fs.WalkDir(root, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(name, ".js") {
			return err
		}
		scripts++
		src, err := fs.ReadFile(root, name)
		if err != nil {
			return err
		}
		toks, err := jsTokenize(string(src))
		if err != nil {
			t.Errorf("web/static/%s: cannot read its imports: %v", name, err)
			return nil
		}
		for _, imp := range jsImports(toks) {
			imports++
			if why := badImport(name, imp, exists); why != "" {
				t.Errorf("web/static/%s:%d: import %s (%s)", name, imp.line, why, docRef)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if scripts == 0 || imports == 0 {
		t.Fatalf("found %d scripts and %d imports under %s: the client moved?", scripts, imports, static)
	}
}

// TestJSImportsParser proves the tokenizer finds every import form and is not fooled by
// comments, strings, template literals or regular expressions that mention imports.
func TestJSImportsParser(t *testing.T) {
	src := `// import x from 'commented';
/* import y from "block comment" */
import { a, b as c } from './a.js';
import d, * as e from "../b.js";
import './side-effect.js';
import {
  f,
  from,
} from './multi-line.js';
export { g } from './re-export.js';
export * as h from './star.js';
export { local };
export const s = 'import z from "in a string"';
const tpl = ~import q from 'template' ${ s.map((v) => { return ~${v}~; }) } import r from 'still template'~;
const re = /import w from 'regex'/g, ratio = 4 / 2 / 1;
const lazy = await import('./lazy.js');
const computed = import(name);
const meta = import.meta.url;
obj.import('./not-an-import.js');
const o = { import: 1, from: './nope.js' };
import bare from 'lodash';
`
	src = strings.ReplaceAll(src, "~", "`") // a Go raw string cannot hold a backtick
	toks, err := jsTokenize(src)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, imp := range jsImports(toks) {
		if imp.computed {
			got = append(got, fmt.Sprintf("%d:<computed>", imp.line))
		} else {
			got = append(got, fmt.Sprintf("%d:%s", imp.line, imp.spec))
		}
	}
	want := []string{
		"3:./a.js", "4:../b.js", "5:./side-effect.js", "9:./multi-line.js", "10:./re-export.js",
		"11:./star.js", "16:./lazy.js", "17:<computed>", "21:lodash",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("imports:\n got %v\nwant %v", got, want)
	}

	exists := func(name string) bool { return name == "js/a.js" || name == "b.js" }
	for _, c := range []struct {
		spec string
		ok   bool
	}{
		{"./a.js", true},
		{"../b.js", true},
		{"./missing.js", false},
		{"../../outside.js", false},
		{"lodash", false},
		{"https://cdn.example/x.js", false},
		{"/js/a.js", false},
	} {
		why := badImport("js/app.js", jsImport{spec: c.spec}, exists)
		if (why == "") != c.ok {
			t.Errorf("js/app.js importing %q: allowed = %v, want %v (%s)", c.spec, why == "", c.ok, why)
		}
	}
	if badImport("js/app.js", jsImport{computed: true}, exists) == "" {
		t.Error("a computed dynamic import was allowed")
	}
}
