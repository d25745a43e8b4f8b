package demo

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one child process of the demo. Its stderr goes to a log file in
// the work directory (shown when something fails); its stdout lines are
// delivered on lines.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	lines   chan string // stdout, closed at EOF
	errs    chan string // stderr lines, best effort (dropped when full)
	done    chan struct{}
	err     error // valid after done
}

// start runs bin args as name, logging stderr to dir/name.log.
func start(ctx context.Context, dir, name, bin string, env []string, args ...string) (*proc, error) {
	logPath := dir + "/" + name + ".log"
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s: log file: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, lines: make(chan string, 4096), errs: make(chan string, 256), done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	go func() {
		defer wg.Done()
		defer close(p.errs)
		sc := bufio.NewScanner(io.TeeReader(stderr, logf))
		for sc.Scan() {
			select {
			case p.errs <- sc.Text():
			default:
			}
		}
	}()
	go func() {
		wg.Wait()
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	context.AfterFunc(ctx, p.stop)
	return p, nil
}

// stop asks the process to exit (SIGTERM) and kills it after 5s.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitStderr waits for a stderr line matching re, the process's exit or
// the timeout, whichever comes first.
func (p *proc) waitStderr(re *regexp.Regexp, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case l, ok := <-p.errs:
			if !ok {
				<-p.done
				return p.failed(fmt.Sprintf("exited before logging %q", re))
			}
			if re.MatchString(l) {
				return nil
			}
		case <-deadline.C:
			return p.failed(fmt.Sprintf("did not log %q within %s", re, timeout))
		}
	}
}

// failed describes a failure of p with the tail of its log.
func (p *proc) failed(what string) error {
	select {
	case <-p.done:
		what += fmt.Sprintf(" (exit: %v)", p.err)
	default:
	}
	return fmt.Errorf("%s %s; last lines of %s:\n%s", p.name, what, p.logPath, tail(p.logPath, 15))
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "  (no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// output runs bin args to completion and returns its stdout.
func output(ctx context.Context, bin string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return out, fmt.Errorf("ward %s: %w: %s", strings.Join(args[:min(2, len(args))], " "), err, strings.TrimSpace(stderr.String()))
		}
		return out, fmt.Errorf("ward %s: %w", strings.Join(args[:min(2, len(args))], " "), err)
	}
	return out, nil
}

// outputAll is output with the command's stderr (its notes) after its
// stdout.
func outputAll(ctx context.Context, bin string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("ward %s: %w: %s", strings.Join(args[:min(2, len(args))], " "), err, strings.TrimSpace(stderr.String()))
	}
	return append(out, stderr.Bytes()...), nil
}
