package archtest

import "strings"

// The import rules, as pure functions of module-relative package paths ("roomsvc",
// "gateway/edge", "internal/platform"); docs/architecture.md ("Import rules") says why.
//
//  1. A service's packages (the service's directory and everything under it) import no package
//     of another service, in code or in tests: services meet only through the generated Connect
//     clients in gen/.
//  2. Outside the services, only cmd/tuturu (main wires every service) and the tests of e2e
//     (whole-system tests start every service in-process) import service packages. Everything
//     else — internal/, gen/, web, loadtest, deploy and any new package — imports none, so no
//     other package can import several services either. deploy checks the deployment through
//     the built binary and loadtest drives a gateway over its public WebSocket: neither needs one.
//  3. internal/ is shared plumbing that knows no service: beyond rule 2, its code imports no gen/
//     package (a service's contract is part of the service). Its tests may, to exercise the
//     plumbing with real generated handlers and clients.
//  4. gen/ is generated from proto/ and imports only gen/ packages.

// services are the service roots; a new service must be added here.
var services = []string{"gateway", "roomsvc", "credsvc", "turnsvc"}

// importKind says which files of a package an import comes from.
type importKind int

const (
	codeImport  importKind = iota // GoFiles
	testImport                    // TestGoFiles (package p)
	xtestImport                   // XTestGoFiles (package p_test)
)

func (k importKind) String() string {
	switch k {
	case testImport:
		return "test"
	case xtestImport:
		return "external test"
	}
	return "code"
}

const docRef = `docs/architecture.md, "Import rules"`

// under reports whether rel is dir or a package below it.
func under(rel, dir string) bool {
	return rel == dir || strings.HasPrefix(rel, dir+"/")
}

// serviceOf names the service rel belongs to, or "" when it belongs to none.
func serviceOf(rel string) string {
	for _, s := range services {
		if under(rel, s) {
			return s
		}
	}
	return ""
}

// mayImportServices lists the packages outside the services allowed to import them (rule 2).
func mayImportServices(rel string, k importKind) bool {
	switch rel {
	case "cmd/tuturu":
		return true
	case "e2e":
		return k != codeImport
	}
	return false
}

// broken returns the rule that pkg importing imp (both module-relative) breaks, or "".
func broken(pkg string, k importKind, imp string) string {
	if s := serviceOf(pkg); s != "" {
		if t := serviceOf(imp); t != "" && t != s {
			return "a service never imports another service's packages; services meet only through the generated clients in gen/"
		}
	} else if serviceOf(imp) != "" && !mayImportServices(pkg, k) {
		if under(pkg, "internal") {
			return "internal/ is shared plumbing and knows no service"
		}
		return "only cmd/tuturu (and the tests of e2e) import services"
	}
	if under(pkg, "internal") && k == codeImport && under(imp, "gen") {
		return "internal/ code knows no service, not even its contract in gen/ (only its tests may import gen/)"
	}
	if under(pkg, "gen") && !under(imp, "gen") {
		return "gen/ is generated from proto/ and imports only gen/ packages"
	}
	return ""
}
