package policy

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultPollInterval is how often a Watcher looks at its files.
const DefaultPollInterval = 2 * time.Second

// ReloadEvent reports one reload attempt of a Watcher.
type ReloadEvent struct {
	// OK is true when NewHash is now deciding.
	OK bool
	// OldHash is the bundle deciding before the attempt (and still
	// deciding when !OK); NewHash the content that was tried.
	OldHash, NewHash string
	// Err says why the attempt failed, nil when OK. Load errors are
	// *Error, with the file, line and rule.
	Err error
	// Manual is true for Reload calls, false for changes the poll found.
	Manual bool
	Time   time.Time
}

// WatchConfig configures a Watcher.
type WatchConfig struct {
	// Path is the bundle: a policy file or a directory (see Load).
	Path string
	// Interval between polls; DefaultPollInterval when zero.
	Interval time.Duration
	// OnReload, when set, is called after every reload attempt that
	// found changed content, and after every Reload call, from the
	// goroutine that reloaded. It must not block for long.
	OnReload func(ReloadEvent)
	// Budgets are shared by every bundle the Watcher loads, so budgets
	// survive reloads; default limits when nil.
	Budgets *Budgets
	// Options are passed to Load (WithBudgets is set by the Watcher).
	Options []Option
}

// Watcher holds the current bundle of a policy path and replaces it when
// the files change, keeping the last good bundle when a change does not
// load. Decide always uses one whole bundle, old or new.
//
// It polls rather than use inotify: a poll is portable, sees edits
// through symlinks swapped by Kubernetes ConfigMaps, and costs a read of
// a few small files every Interval. It compares content hashes, not
// mtimes, so two writes within one mtime tick are not missed.
type Watcher struct {
	cfg     WatchConfig
	cur     atomic.Pointer[Policy]
	mu      sync.Mutex // serialises reloads
	tried   string     // hash of the content last attempted, good or bad
	budgets *Budgets
}

// NewWatcher loads the bundle at cfg.Path; it fails when that first load
// fails, as an enforcer must not start without a policy.
func NewWatcher(cfg WatchConfig) (*Watcher, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultPollInterval
	}
	w := &Watcher{cfg: cfg, budgets: cfg.Budgets}
	if w.budgets == nil {
		w.budgets = NewBudgets(BudgetLimits{})
	}
	p, err := w.load()
	if err != nil {
		return nil, err
	}
	w.cur.Store(p)
	w.tried = p.Hash()
	return w, nil
}

func (w *Watcher) load() (*Policy, error) {
	opts := append(append([]Option{}, w.cfg.Options...), WithBudgets(w.budgets))
	return Load(w.cfg.Path, opts...)
}

// Policy returns the bundle deciding now.
func (w *Watcher) Policy() *Policy { return w.cur.Load() }

// Decide decides with the current bundle (see Policy.Decide).
func (w *Watcher) Decide(ctx context.Context, in *Input) Decision {
	return w.cur.Load().Decide(ctx, in)
}

// Budgets returns the budgets shared across reloads.
func (w *Watcher) Budgets() *Budgets { return w.budgets }

// Reload loads the bundle now. On success the new bundle decides from the
// next Decide on; on failure the current one stays and the error is
// returned. Either way OnReload is told.
func (w *Watcher) Reload() error {
	return w.reload(true)
}

// Run polls every Interval until ctx ends, reloading when the content
// changed. It returns nil when ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			_ = w.reload(false) // reported through OnReload
		}
	}
}

// contentHash hashes the bundle's files as they are now.
func (w *Watcher) contentHash() (string, error) {
	fi, err := os.Stat(w.cfg.Path)
	if err != nil {
		return "", &Error{Code: CodeRead, File: w.cfg.Path, Err: err}
	}
	files, err := bundleFiles(w.cfg.Path, fi.IsDir())
	if err != nil {
		return "", err
	}
	src, err := readFiles(files)
	if err != nil {
		return "", err
	}
	return bundleHash(src), nil
}

func (w *Watcher) reload(manual bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	old := w.cur.Load()
	ev := ReloadEvent{OldHash: old.Hash(), Manual: manual}
	hash, err := w.contentHash()
	key := hash
	if err != nil {
		// Unreadable (deleted, mid-rename): reported once per distinct
		// error, and retried on every poll.
		key = "unreadable: " + err.Error()
	}
	if !manual && key == w.tried {
		return nil // nothing changed since the last attempt, good or bad
	}
	w.tried = key
	var p *Policy
	if err == nil {
		ev.NewHash = hash
		if hash == old.Hash() {
			p = old // back to, or still at, the deciding content
		} else {
			p, err = w.load()
		}
	}
	if err == nil && p.Hash() != hash {
		// The files changed between hashing and loading; report what
		// was loaded, and the next poll will look again.
		ev.NewHash = p.Hash()
	}
	ev.Time = time.Now()
	if err != nil {
		ev.Err = err
	} else {
		ev.OK = true
		w.cur.Store(p)
	}
	if w.cfg.OnReload != nil {
		w.cfg.OnReload(ev)
	}
	return ev.Err
}
