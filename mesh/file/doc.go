// Package file is Ward's directory config source: it loads a tree of
// multi-document YAML holding Istio objects (and one optional Ward
// MeshConfig), validates every object strictly with package schema, watches
// the tree with fsnotify, and publishes a new mesh.Snapshot after each
// debounced change. An invalid file or object never displaces the last good
// version of that object: the rest of the change applies, the rejection is
// logged, counted and reported by Status.
package file
