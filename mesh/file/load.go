package file

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/schema"
)

// Rejection is an object or file that failed to load.
type Rejection struct {
	Key    mesh.Key    // zero when the whole file failed
	Source mesh.Source // file and line
	Err    error
}

// Result is one load of a config tree.
type Result struct {
	Objects    []*mesh.Config
	Mesh       *mesh.MeshConfig // nil when the tree has none
	MeshSource mesh.Source
	Rejected   []Rejection
	// BrokenFiles lists files that could not be read or parsed at all, so
	// the objects they held are unknown.
	BrokenFiles []string
	// Ignored lists documents that are not Istio or Ward objects.
	Ignored []string
	// Files is the fingerprint of every config file read whole.
	Files map[string]Fingerprint
	// Deferred lists files read but not parsed (see load).
	Deferred []string
	// Snapshot is built from Objects and Mesh alone (no last-good merge).
	Snapshot *mesh.Snapshot
}

// Errs returns the rejections as errors.
func (r *Result) Errs() []error {
	out := make([]error, 0, len(r.Rejected))
	for _, rj := range r.Rejected {
		out = append(out, rj.Err)
	}
	return out
}

// Load reads every *.yaml, *.yml and *.json file under dir (hidden files and
// directories are skipped) within the default Limits and returns the valid
// objects and every rejection.
func Load(dir string) (*Result, error) { return LoadLimited(dir, Limits{}) }

// LoadLimited is Load within lim. It fails when dir itself cannot be
// walked or the tree is larger than lim.MaxTreeBytes (a
// *TreeTooLargeError naming the file that crossed the bound).
func LoadLimited(dir string, lim Limits) (*Result, error) { return load(dir, lim, nil) }

// load is LoadLimited; files for which defer returns true are read and
// fingerprinted but not parsed (listed in Result.Deferred): the source
// would hold them back anyway, so parsing them would be wasted work.
func load(dir string, lim Limits, deferParse func(name string, fp Fingerprint) bool) (*Result, error) {
	files, err := configFiles(dir)
	if err != nil {
		return nil, err
	}
	r, err := newReader(dir, lim)
	if err != nil {
		return nil, err
	}
	l := &loader{res: &Result{Files: map[string]Fingerprint{}}, seen: map[mesh.Key]mesh.Source{}, read: r, deferParse: deferParse}
	for _, f := range files {
		if err := l.file(dir, f); err != nil {
			return nil, err
		}
	}
	var mc mesh.MeshConfig
	if l.res.Mesh != nil {
		mc = *l.res.Mesh
	}
	l.res.Snapshot = mesh.NewSnapshot(mc, l.res.Objects)
	return l.res, nil
}

func configFiles(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != dir && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() && isConfigFile(path) {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load config dir %s: %w", dir, err)
	}
	sort.Strings(files)
	return files, nil
}

func isConfigFile(path string) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml", ".json":
		return !strings.HasPrefix(filepath.Base(path), ".")
	}
	return false
}

type loader struct {
	res        *Result
	seen       map[mesh.Key]mesh.Source
	read       *reader
	deferParse func(name string, fp Fingerprint) bool
}

// file loads one file whole or not at all: when any document fails to
// parse, nothing the file's earlier documents produced is kept (the file
// is broken and its last good objects stay). Documents are parsed one at
// a time, so only one is held in parsed form. Only a tree over its size
// bound is returned as an error.
func (l *loader) file(root, path string) error {
	name := path
	if rel, err := filepath.Rel(root, path); err == nil {
		name = rel
	}
	data, fp, err := l.read.read(path, name)
	if isTreeTooLarge(err) {
		return err
	}
	if err != nil {
		l.broken(name, err)
		return nil
	}
	if l.deferParse != nil && l.deferParse(name, fp) {
		l.res.Deferred = append(l.res.Deferred, name)
		l.res.Files[name] = fp
		return nil
	}
	mark := l.mark()
	err = schema.EachDocument(data, l.read.lim.YAML, func(d *schema.Document) error {
		l.doc(name, d)
		return nil
	})
	if err != nil {
		l.rollback(mark)
		l.broken(name, err)
		return nil
	}
	l.res.Files[name] = fp
	return nil
}

// mark is how far a result had grown before a file.
type mark struct {
	objects, rejected, ignored int
	mesh                       *mesh.MeshConfig
	meshSrc                    mesh.Source
}

func (l *loader) mark() mark {
	return mark{len(l.res.Objects), len(l.res.Rejected), len(l.res.Ignored), l.res.Mesh, l.res.MeshSource}
}

// rollback forgets everything added since m.
func (l *loader) rollback(m mark) {
	for _, c := range l.res.Objects[m.objects:] {
		delete(l.seen, c.Key())
	}
	l.res.Objects = l.res.Objects[:m.objects]
	l.res.Rejected = l.res.Rejected[:m.rejected]
	l.res.Ignored = l.res.Ignored[:m.ignored]
	l.res.Mesh, l.res.MeshSource = m.mesh, m.meshSrc
}

func (l *loader) broken(name string, err error) {
	l.res.BrokenFiles = append(l.res.BrokenFiles, name)
	l.res.Rejected = append(l.res.Rejected, Rejection{Source: mesh.Source{File: name}, Err: fmt.Errorf("%s: %w", name, err)})
}

func (l *loader) doc(name string, d *schema.Document) {
	src := mesh.Source{File: name, Line: d.Line}
	dec, err := schema.Decode(d, src)
	if err != nil {
		l.reject(src, err)
		return
	}
	switch {
	case dec.Ignored != "":
		l.res.Ignored = append(l.res.Ignored, fmt.Sprintf("%s: %s", src, dec.Ignored))
	case dec.MeshConfig != nil:
		l.meshConfig(src, dec.MeshConfig)
	default:
		l.object(d, dec.Config)
	}
}

func (l *loader) reject(src mesh.Source, err error) {
	rj := Rejection{Source: src, Err: err}
	var oe *schema.ObjectError
	if errors.As(err, &oe) {
		rj.Key = oe.Key
	}
	l.res.Rejected = append(l.res.Rejected, rj)
}

func (l *loader) meshConfig(src mesh.Source, mc *mesh.MeshConfig) {
	if l.res.Mesh != nil {
		l.reject(src, fmt.Errorf("%s: MeshConfig: a second MeshConfig (the first is at %s)", src, l.res.MeshSource))
		return
	}
	l.res.Mesh, l.res.MeshSource = mc, src
}

func (l *loader) object(d *schema.Document, c *mesh.Config) {
	if err := schema.ValidateObject(c, d); err != nil {
		l.reject(c.Source, err)
		return
	}
	if prev, dup := l.seen[c.Key()]; dup {
		l.reject(c.Source, &schema.ObjectError{Key: c.Key(), Source: c.Source,
			Errors: []schema.FieldError{{Path: "metadata.name", Message: fmt.Sprintf("duplicate object (first defined at %s)", prev)}}})
		return
	}
	l.seen[c.Key()] = c.Source
	l.res.Objects = append(l.res.Objects, c)
}
