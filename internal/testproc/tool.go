package testproc

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// GoTool builds a tool pinned in a module of its own (modfile, e.g. "../tools/helm/go.mod"
// seen from the test's package) and returns the path of the executable go tool keeps in the
// build cache. The first build of a large tool takes minutes; later calls about a second.
func GoTool(ctx context.Context, modfile, tool string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "tool", "-n", "-modfile="+modfile, tool)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("build %s (go tool -modfile=%s %s): %w\n%s", tool, modfile, tool, err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out)), nil
}
