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
	"sync"
	"time"

	"github.com/wardmesh/ward/internal/atomicfile"
)

// IssuedLogPath is where a file-mode CA keeps its issuance log: next to
// the root state, StateDir/ca/issued.jsonl.
func IssuedLogPath(stateDir string) string {
	return filepath.Join(stateDir, "ca", "issued.jsonl")
}

// FileLog is an IssuanceLog kept in a JSON-lines file (mode 0600): one
// record appended per issued certificate, the whole file rewritten
// atomically when it is compacted (expired records and those beyond
// MaxRecords dropped). The records are mirrored in memory, which Issued
// reads.
//
// Record appends one line with one unbuffered write (a few microseconds
// against the ~200 µs of an ECDSA issuance; BenchmarkSign) and compacts
// inline when due, which is amortised O(1) per record. Writes are not
// synced: a crash may lose the last records (the certificates stay valid,
// they only miss from the inventory) or leave a torn last line, which the
// next load skips. Nothing runs in the background, so a log has no
// lifetime to manage beyond Close. One process at a time may own the
// file.
type FileLog struct {
	path  string
	clock Clock
	log   *slog.Logger

	mu         sync.Mutex
	set        recordSet
	compactDue bool     // the file holds lines the memory dropped at load
	f          *os.File // append handle, opened on first write
	buf        []byte   // line buffer, reused
}

var _ IssuanceLog = (*FileLog)(nil)

// OpenFileLog loads the log at path (a missing file is an empty log),
// dropping expired and unreadable records from memory; the file itself is
// rewritten only at the next Record, so a process that never signs (ward
// ca init) never writes it. The directory must exist by the first Record
// (the CA state's does); it is never created, so a log whose directory
// was removed fails its writes instead of resurrecting it.
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

// Record keeps r and appends it to the file, or rewrites the file when a
// compaction is due. On a write error r stays in memory (and reaches the
// file at the next compaction); the error is returned and counted.
func (l *FileLog) Record(r IssuedCert) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.set.add(r) {
		l.set.prune(l.clock.Now())
		l.compactDue = true
	}
	if l.compactDue {
		return l.rewrite()
	}
	l.buf = appendRecord(l.buf[:0], r)
	if err := l.append(l.buf); err != nil {
		l.set.count(dropWriteError, 1)
		l.compactDue = true // the rewrite restores the file from memory
		return fmt.Errorf("record issuance %s in %s: %w", r.Serial, l.path, err)
	}
	return nil
}

func (l *FileLog) append(line []byte) error {
	if l.f == nil {
		f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		l.f = f
	}
	_, err := l.f.Write(line)
	return err
}

// rewrite replaces the file with the records in memory and drops the
// append handle, which points at the replaced file.
func (l *FileLog) rewrite() error {
	var b []byte
	for _, r := range l.set.recs {
		b = appendRecord(b, r)
	}
	if _, err := os.Stat(filepath.Dir(l.path)); err != nil {
		return fmt.Errorf("compact issuance log %s: %w", l.path, err)
	}
	if err := atomicfile.Write(l.path, b, 0o600, 0o700); err != nil {
		return fmt.Errorf("compact issuance log %s: %w", l.path, err)
	}
	l.compactDue = false
	if l.f != nil {
		_ = l.f.Close() // nothing unwritten: writes are unbuffered
		l.f = nil
	}
	return nil
}

// Issued returns the unexpired records.
func (l *FileLog) Issued(now time.Time) []IssuedCert {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.set.issued(now)
}

// Scope is ScopeState.
func (l *FileLog) Scope() string { return ScopeState }

// Close closes the append handle. A Record after Close reopens the file.
func (l *FileLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
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
	if r.Node != "" {
		b = appendJSONString(append(b, `,"node":`...), r.Node)
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
