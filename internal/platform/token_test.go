package platform

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestTokenGeneratedOnceWithMode0600(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	tok, path, err := LoadOrCreateToken(dir, "admin", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) < 32 || path != filepath.Join(dir, "admin.token") {
		t.Fatalf("token len %d at %q", len(tok), path)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, want 0600", st.Mode().Perm())
	}
	again, _, err := LoadOrCreateToken(dir, "admin", "")
	if err != nil || again != tok {
		t.Fatalf("second load = %q, %v; want the stored token", again, err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".admin.token-*"))
	if len(leftovers) != 0 {
		t.Fatalf("temporary files left behind: %v", leftovers)
	}
}

func TestTokenConfigured(t *testing.T) {
	dir := t.TempDir()
	tok, path, err := LoadOrCreateToken(dir, "admin", "a-configured-token-of-length")
	if err != nil || tok != "a-configured-token-of-length" || path != "" {
		t.Fatalf("got %q %q %v", tok, path, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "admin.token")); !os.IsNotExist(err) {
		t.Fatal("a configured token must not be written to disk")
	}
	if _, _, err := LoadOrCreateToken(dir, "admin", "short"); err == nil || !strings.Contains(err.Error(), "too short") {
		t.Fatalf("short token: %v", err)
	}
}

// Services in separate containers share one volume; racing first starts must agree.
func TestTokenConcurrentCreationAgrees(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	got := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			tok, _, err := LoadOrCreateToken(dir, "internal", "")
			if err != nil {
				t.Error(err)
			}
			got[i] = tok
		})
	}
	wg.Wait()
	for i := 1; i < n; i++ {
		if got[i] != got[0] {
			t.Fatalf("processes disagree on the token: %q vs %q", got[0], got[i])
		}
	}
}

func TestTokenFileTooShortIsAnError(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "admin.token"), []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateToken(dir, "admin", ""); err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Fatalf("empty token file: %v", err)
	}
}
