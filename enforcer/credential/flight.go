package credential

import (
	"context"
	"sync"
)

// flights lets one caller at a time mint for a cache key, so calls racing
// a task's first credential wait for it instead of each minting (and
// recording, and handing a backend) one of their own. A key's entry lives
// only while someone holds or waits for it.
type flights struct {
	mu    sync.Mutex
	lanes map[string]*lane
}

type lane struct {
	turn chan struct{} // holds a value while someone mints
	refs int           // holders and waiters
}

// acquire waits for key's turn, or for ctx to end.
func (f *flights) acquire(ctx context.Context, key string) (release func(), err error) {
	f.mu.Lock()
	if f.lanes == nil {
		f.lanes = map[string]*lane{}
	}
	l := f.lanes[key]
	if l == nil {
		l = &lane{turn: make(chan struct{}, 1)}
		f.lanes[key] = l
	}
	l.refs++
	f.mu.Unlock()
	select {
	case l.turn <- struct{}{}:
	case <-ctx.Done():
		f.leave(key, l)
		return nil, ctx.Err()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-l.turn
			f.leave(key, l)
		})
	}, nil
}

func (f *flights) leave(key string, l *lane) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l.refs--; l.refs == 0 {
		delete(f.lanes, key)
	}
}
