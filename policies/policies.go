package policies

import (
	"embed"
	"io/fs"
)

//go:embed lib/*.rego
var lib embed.FS

//go:embed examples
var examples embed.FS

// LibPackage is the Rego package of the shared library.
const LibPackage = "data.ward.lib"

// Library returns the shared Rego library as file name → module source.
func Library() map[string]string {
	out := map[string]string{}
	entries, err := fs.ReadDir(lib, "lib")
	if err != nil {
		panic("policies: embedded library missing: " + err.Error())
	}
	for _, e := range entries {
		b, err := fs.ReadFile(lib, "lib/"+e.Name())
		if err != nil {
			panic("policies: embedded library unreadable: " + err.Error())
		}
		out["ward/lib/"+e.Name()] = string(b)
	}
	return out
}

// Examples returns the example policy sets (Istio YAML) as an fs.FS rooted
// at the examples directory.
func Examples() fs.FS {
	sub, err := fs.Sub(examples, "examples")
	if err != nil {
		panic("policies: embedded examples missing: " + err.Error())
	}
	return sub
}
