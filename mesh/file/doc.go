// Package file is Ward's directory config source: it loads a tree of
// multi-document YAML holding Istio objects (and one optional Ward
// MeshConfig), validates every object strictly with package schema, watches
// the tree with fsnotify, and publishes a new mesh.Snapshot after each
// debounced change. An invalid file or object never displaces the last good
// version of that object: the rest of the change applies, the rejection is
// logged, counted and reported by Status. The tree is untrusted input: only
// regular files are read (symlinks only inside the tree), within size and
// YAML-node bounds, and a changed or removed file is applied only once it
// has been stable for the quiet period.
package file
