package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watcher watches a directory tree, adding directories as they appear.
type watcher struct {
	fs     *fsnotify.Watcher
	events chan struct{}
	errs   chan error
	done   chan struct{}
}

func newWatcher(root string) (*watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", root, err)
	}
	w := &watcher{fs: fw, events: make(chan struct{}, 1), errs: make(chan error, 1), done: make(chan struct{})}
	if err := w.addTree(root); err != nil {
		fw.Close()
		return nil, err
	}
	go w.loop()
	return w, nil
}

func (w *watcher) addTree(root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path != root {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if path != root && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if err := w.fs.Add(path); err != nil {
			return fmt.Errorf("watch %s: %w", path, err)
		}
		return nil
	})
}

func (w *watcher) loop() {
	defer close(w.done)
	for {
		select {
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					_ = w.addTree(ev.Name)
				}
			}
			w.notify()
		case err, ok := <-w.fs.Errors:
			if !ok {
				return
			}
			select {
			case w.errs <- err:
			default:
			}
		}
	}
}

// notify coalesces events into one pending signal.
func (w *watcher) notify() {
	select {
	case w.events <- struct{}{}:
	default:
	}
}

func (w *watcher) close() {
	w.fs.Close()
	<-w.done
}

// debounce calls fire once the watcher has been quiet for quiet, or at most
// maxWait after the first event of a burst, until ctx ends. seen is called
// on every event.
func debounce(ctx context.Context, w *watcher, quiet, maxWait time.Duration, seen, fire func()) error {
	var quietT, maxT <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-w.errs:
			return fmt.Errorf("watch: %w", err)
		case <-w.events:
			seen()
			quietT = time.After(quiet)
			if maxT == nil {
				maxT = time.After(maxWait)
			}
		case <-quietT:
			quietT, maxT = nil, nil
			fire()
		case <-maxT:
			quietT, maxT = nil, nil
			fire()
		}
	}
}
