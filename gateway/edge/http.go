package edge

import (
	_ "embed"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// coverPage is what the bare domain and every unknown name serve: a plain page that says
// nothing about what else runs here.
//
//go:embed cover.html
var coverPage []byte

// contentSecurityPolicy is the app's policy. The web client is plain ES modules and a
// stylesheet from its own origin, with no inline script or style; media streams are blob:
// URLs; the socket is wss: on the same host.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"connect-src 'self' wss:; media-src 'self' blob:; img-src 'self' data:; " +
	"object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"

// secureHeaders adds the headers every HTTPS response carries: HSTS (without includeSubDomains,
// which would bind names under the domain that the operator may serve elsewhere) and the
// usual hardening.
func secureHeaders(next http.Handler, hstsMaxAge int, csp string) http.Handler {
	hsts := "max-age=" + strconv.Itoa(hstsMaxAge)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Strict-Transport-Security", hsts)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if csp != "" {
			h.Set("Content-Security-Policy", csp)
			// Camera and microphone for the app itself, nothing for embedders.
			h.Set("Permissions-Policy", "camera=(self), microphone=(self), geolocation=()")
		}
		next.ServeHTTP(w, r)
	})
}

// coverHandler serves the cover page at / and a plain 404 elsewhere, as a fresh web server
// would.
func coverHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
		if r.URL.Path != "/" && r.URL.Path != "/index.html" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'")
		_, _ = w.Write(coverPage)
	})
}

// redirectHandler sends every plain-HTTP request to the same path over HTTPS: 301 for GET and
// HEAD, 308 otherwise so that the method and body survive. Hosts other than ours go to the
// bare domain, so the redirect cannot be pointed at a name of the requester's choosing.
func redirectHandler(known func(string) bool, domain string, httpsPort int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := strings.ToLower(r.Host)
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		target := "/"
		if known(host) {
			target = r.URL.RequestURI()
		} else {
			host = domain
		}
		if httpsPort != 443 {
			host = net.JoinHostPort(host, strconv.Itoa(httpsPort))
		}
		code := http.StatusPermanentRedirect
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			code = http.StatusMovedPermanently
		}
		http.Redirect(w, r, fmt.Sprintf("https://%s%s", host, target), code)
	})
}
