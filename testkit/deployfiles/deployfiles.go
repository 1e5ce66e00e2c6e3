// Package deployfiles reads the configuration files under deploy/ that
// tests start servers from, rendered as envsubst renders them in
// production: ${NAME} replaced by its value. Tests run the shipped files,
// so the files cannot drift from what is tested.
package deployfiles

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Root is the repository's root: the nearest directory at or above the
// working directory holding deploy/. Tests run inside the repository.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if st, err := os.Stat(filepath.Join(dir, "deploy")); err == nil && st.IsDir() {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("deployfiles: no deploy/ directory above the working directory")
		}
		dir = parent
	}
}

// Render reads path (relative to the repository's root) and replaces
// every ${NAME} with vars[NAME]. A name without a value is an error, as is
// a value no name uses, so a file and its test cannot disagree silently.
func Render(path string, vars map[string]string) ([]byte, error) {
	root, err := Root()
	if err != nil {
		return nil, err
	}
	body, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		return nil, fmt.Errorf("deployfiles: %w", err)
	}
	used := map[string]bool{}
	var missing []string
	out := os.Expand(string(body), func(name string) string {
		v, ok := vars[name]
		if !ok {
			missing = append(missing, name)
			return ""
		}
		used[name] = true
		return v
	})
	if len(missing) > 0 {
		return nil, fmt.Errorf("deployfiles: %s: no value for %s", path, strings.Join(missing, ", "))
	}
	var unused []string
	for name := range vars {
		if !used[name] {
			unused = append(unused, name)
		}
	}
	if len(unused) > 0 {
		sort.Strings(unused)
		return nil, fmt.Errorf("deployfiles: %s does not use %s", path, strings.Join(unused, ", "))
	}
	return []byte(out), nil
}
