package detect

import (
	"context"
	"os"
	"time"
)

// Watch polls dir every interval and, when its rule files changed, loads
// them and calls onLoad with the new set, or with the error when they do
// not load (the caller keeps its last good set). It calls onLoad once at
// the start with the directory as it is then, so a change between the
// caller's own load and the first poll is not missed; after that only
// when the content hash differs from the last attempt, good or bad, so a
// broken file is reported once, not every poll. It polls rather than
// use inotify, for the reasons the enforcer's policy watcher does: it is
// portable and sees Kubernetes ConfigMap symlink swaps. It returns when
// ctx ends.
func Watch(ctx context.Context, dir string, interval time.Duration, onLoad func(*RuleSet, error)) {
	if interval <= 0 {
		interval = 2 * time.Second
	}
	tried := ""
	poll := func() {
		key, err := dirHash(dir)
		if err != nil {
			key = "unreadable: " + err.Error()
		}
		if key == tried {
			return
		}
		tried = key
		if err != nil {
			onLoad(nil, err)
			return
		}
		rs, err := LoadDir(dir)
		if err != nil {
			onLoad(nil, err)
			return
		}
		onLoad(rs, nil)
	}
	poll()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			poll()
		}
	}
}

// dirHash is the hash LoadDir would give the files at dir now.
func dirHash(dir string) (string, error) {
	if _, err := os.Stat(dir); err != nil {
		return "", &Error{Code: CodeRead, File: dir, Err: err}
	}
	files, err := readRuleFiles(os.DirFS(dir), dir)
	if err != nil {
		return "", err
	}
	rs := &RuleSet{files: files}
	if _, err := rs.finish(); err != nil {
		return "", err
	}
	return rs.hash, nil
}
