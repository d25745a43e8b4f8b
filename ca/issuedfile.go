package ca

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/wardmesh/ward/internal/atomicfile"
)

// IssuedLogPath is where a file-mode CA keeps its issuance log: next to
// the root state, StateDir/ca/issued.jsonl.
func IssuedLogPath(stateDir string) string {
	return filepath.Join(stateDir, "ca", "issued.jsonl")
}

// flushDelay is how long a queued record may wait before it is written:
// records arriving within it share one write, and signing does not wake a
// writer per certificate.
const flushDelay = 50 * time.Millisecond

// FileLog is an IssuanceLog kept in a JSON-lines file (mode 0600): one
// record appended per issued certificate, the whole file rewritten
// atomically when it is compacted (expired records and those beyond
// MaxRecords dropped). The records are mirrored in memory, which Issued
// reads.
//
// Signing never waits for the disk: Record encodes the line and queues
// it; a flush scheduled flushDelay after the first queued record appends
// the batch in one write, or performs a due compaction. Appends are not
// synced: a crash may lose the last records (the certificates stay valid,
// they only miss from the inventory) or leave a torn last line, which the
// next load skips. One process at a time may own the file.
type FileLog struct {
	path  string
	clock Clock
	log   *slog.Logger

	mu         sync.Mutex
	set        recordSet
	pending    []byte      // encoded lines not yet written
	spare      []byte      // the other buffer, reused for pending
	compactDue bool        // rewrite the file from set.recs
	timer      *time.Timer // the scheduled flush; nil when none

	writeMu sync.Mutex // one flush at a time; guards f
	f       *os.File   // append handle
}

var _ IssuanceLog = (*FileLog)(nil)

// OpenFileLog loads the log at path (a missing file is an empty log),
// dropping expired and unreadable records from memory; the file itself is
// rewritten only at the next Record, so a process that never signs (ward
// ca init) never writes it.
func OpenFileLog(path string, cfg LogConfig) (*FileLog, error) {
	cfg.setDefaults()
	dropped, err := newDropCounter(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	l := &FileLog{path: path, clock: cfg.Clock, log: cfg.Log, set: newRecordSet(cfg.MaxRecords, dropped)}
	recs, corrupt, err := readRecords(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("open issuance log %s: %w", path, err)
	}
	if corrupt > 0 {
		l.log.Warn("issuance log: skipped unreadable lines", "path", path, "lines", corrupt)
		l.set.count(dropCorrupt, corrupt)
	}
	l.set.recs = recs
	l.compactDue = l.set.prune(l.clock.Now()) || corrupt > 0
	return l, nil
}

// Record keeps r and queues it for the file (or a compaction when one is
// due). It does no I/O; write errors are logged and counted by the flush.
func (l *FileLog) Record(r IssuedCert) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.set.add(r) {
		l.set.prune(l.clock.Now())
		l.compactDue = true
	}
	if l.compactDue {
		l.pending = l.pending[:0] // the rewrite includes them
	} else {
		l.pending = appendRecord(l.pending, r)
	}
	if l.timer == nil {
		l.timer = time.AfterFunc(flushDelay, l.flush)
	}
	return nil
}

// flush writes what is queued: a due compaction, then appended lines.
func (l *FileLog) flush() {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	l.mu.Lock()
	l.timer = nil
	if l.compactDue {
		recs := slices.Clone(l.set.recs)
		l.compactDue, l.pending = false, l.pending[:0]
		l.mu.Unlock()
		l.rewrite(recs)
		return
	}
	batch := l.pending
	l.pending, l.spare = l.spare[:0], nil
	l.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	if err := l.append(batch); err != nil {
		l.lost(bytes.Count(batch, []byte{'\n'}), err)
	}
	l.mu.Lock()
	l.spare = batch[:0]
	l.mu.Unlock()
}

func (l *FileLog) lost(n int, err error) {
	l.mu.Lock()
	l.set.count(dropWriteError, n)
	l.mu.Unlock()
	l.log.Error("issuance records not written", "path", l.path, "records", n, "err", err)
}

func (l *FileLog) append(batch []byte) error {
	if l.f == nil {
		if err := os.MkdirAll(filepath.Dir(l.path), 0o700); err != nil {
			return err
		}
		f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		l.f = f
	}
	_, err := l.f.Write(batch)
	return err
}

// rewrite replaces the file with recs and drops the append handle, which
// points at the replaced file.
func (l *FileLog) rewrite(recs []IssuedCert) {
	var b []byte
	for _, r := range recs {
		b = appendRecord(b, r)
	}
	if err := atomicfile.Write(l.path, b, 0o600, 0o700); err != nil {
		l.lost(len(recs), fmt.Errorf("compact: %w", err))
		return
	}
	if l.f != nil {
		_ = l.f.Close() // nothing unwritten: writes are unbuffered
		l.f = nil
	}
}

// Flush writes every record queued so far to the file now.
func (l *FileLog) Flush() {
	l.mu.Lock()
	t := l.timer
	if t != nil {
		t.Stop() // if it already fired, writeMu serialises the two flushes
	}
	l.mu.Unlock()
	if t == nil { // nothing queued, or a flush is under way: wait for it
		l.writeMu.Lock()
		l.writeMu.Unlock() //nolint:staticcheck // empty critical section: a barrier
		return
	}
	l.flush()
}

// Issued returns the unexpired records.
func (l *FileLog) Issued(now time.Time) []IssuedCert {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.set.issued(now)
}

// Scope is ScopeState.
func (l *FileLog) Scope() string { return ScopeState }

// Close flushes the queue and closes the append handle. A Record after
// Close reopens the file.
func (l *FileLog) Close() error {
	l.Flush()
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// appendRecord appends r as one JSON line. It is encoding/json's output
// for IssuedCert, written by hand because Sign calls it for every
// certificate and reflection-based encoding cost more than the rest of
// the record keeping together.
func appendRecord(b []byte, r IssuedCert) []byte {
	b = append(b, `{"serial":`...)
	b = appendJSONString(b, r.Serial)
	b = append(b, `,"spiffeId":`...)
	b = appendJSONString(b, r.SPIFFEID)
	b = appendJSONTime(append(b, `,"notBefore":`...), r.NotBefore)
	b = appendJSONTime(append(b, `,"notAfter":`...), r.NotAfter)
	b = appendJSONTime(append(b, `,"issuedAt":`...), r.IssuedAt)
	b = appendJSONString(append(b, `,"signer":`...), r.Signer)
	b = appendJSONString(append(b, `,"root":`...), r.Root)
	if r.Method != "" {
		b = appendJSONString(append(b, `,"method":`...), r.Method)
	}
	return append(b, "}\n"...)
}

// appendJSONString quotes s; strings with anything but printable ASCII
// other than quote and backslash (never the case for SPIFFE IDs and hex
// serials) go through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendJSONTime writes t as time.Time.MarshalJSON does.
func appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// ReadIssuedLog reads an issuance log file without changing it (for ward
// audit --ca-state) and returns its unexpired records at now, newest per
// serial, ordered by expiry. A missing file is an error wrapping
// os.ErrNotExist; unreadable lines (a torn last line) are skipped.
func ReadIssuedLog(path string, now time.Time) ([]IssuedCert, error) {
	recs, _, err := readRecords(path)
	if err != nil {
		return nil, fmt.Errorf("read issuance log %s: %w", path, err)
	}
	return newestUnexpired(recs, now, len(recs)), nil
}

// readRecords parses the file's lines, counting those it cannot read.
func readRecords(path string) ([]IssuedCert, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	var recs []IssuedCert
	corrupt := 0
	rd := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := rd.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var r IssuedCert
			if line[len(line)-1] != '\n' || json.Unmarshal(line, &r) != nil || r.Serial == "" {
				corrupt++
			} else {
				recs = append(recs, r)
			}
		}
		if errors.Is(err, io.EOF) {
			return recs, corrupt, nil
		}
		if err != nil {
			return nil, 0, err
		}
	}
}
