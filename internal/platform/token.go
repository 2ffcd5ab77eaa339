package platform

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// minTokenLength keeps configured tokens out of guessing range.
const minTokenLength = 16

// LoadOrCreateToken returns the configured token when one is given. Otherwise it reads
// <dir>/<name>.token, creating it with a fresh random token (mode 0600) on first start. Several
// processes sharing dir (compose services on one volume) agree on one token: the file is
// published with a hard link, which fails if another process got there first.
// The token itself is never logged; path says where it is.
func LoadOrCreateToken(dir, name, configured string) (token, path string, err error) {
	if configured != "" {
		if len(configured) < minTokenLength {
			return "", "", fmt.Errorf("%s token is too short: use at least %d characters", name, minTokenLength)
		}
		return configured, "", nil
	}
	path = filepath.Join(dir, name+".token")
	if t, err := readToken(path); err == nil {
		return t, path, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", path, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", path, fmt.Errorf("create data directory for %s token: %w", name, err)
	}
	tmp, err := os.CreateTemp(dir, "."+name+".token-*")
	if err != nil {
		return "", path, fmt.Errorf("create %s token: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(RandomToken(32) + "\n"); err != nil {
		tmp.Close()
		return "", path, fmt.Errorf("write %s token: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return "", path, fmt.Errorf("write %s token: %w", name, err)
	}
	// CreateTemp already uses 0600; Link fails if the file exists, so a racing process wins.
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return "", path, fmt.Errorf("store %s token: %w", name, err)
	}
	t, err := readToken(path)
	return t, path, err
}

func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	t := strings.TrimSpace(string(b))
	if len(t) < minTokenLength {
		return "", fmt.Errorf("token file %s is empty or too short: delete it to generate a new one", path)
	}
	return t, nil
}

// RandomToken returns n random bytes, URL-safe base64 encoded.
func RandomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms.
	return base64.RawURLEncoding.EncodeToString(b)
}
