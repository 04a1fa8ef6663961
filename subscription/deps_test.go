package subscription

import (
	"go/build"
	"strings"
	"testing"
)

// TestDependsOnlyOnTheWireContract: a consumer library must not pull in
// the server (executor, eventbus, router, node, stores): it reads the wire
// contract from package api and the event model from package model. The one
// piece of shared plumbing it may use, internal/jsstream (creating a
// stream), is itself held to the same rule by the walk.
func TestDependsOnlyOnTheWireContract(t *testing.T) {
	const module = "github.com/concursus-go/concursus/"
	allowed := map[string]bool{module + "api": true, module + "model": true, module + "internal/jsstream": true}
	seen := map[string]bool{}
	var walk func(path, from string)
	walk = func(path, from string) {
		if seen[path] {
			return
		}
		seen[path] = true
		pkg, err := build.Import(path, ".", 0)
		if err != nil {
			t.Fatalf("import %s: %v", path, err)
		}
		for _, imp := range pkg.Imports {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			if !allowed[imp] {
				t.Errorf("%s imports %s (reached from %s): only api, model and internal/jsstream are allowed", path, imp, from)
				continue
			}
			walk(imp, path)
		}
	}
	walk(module+"subscription", "")
}
