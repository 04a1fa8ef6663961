//go:build !faultinject || !unix

package main

import (
	"bytes"
	"strings"
	"testing"
)

// The production binary has no fault injection: the variable is ignored,
// with a warning.
func TestNoFaultInjection(t *testing.T) {
	var out bytes.Buffer
	t.Setenv("CONCURSUS_FAULT_KILL_BEFORE_PUBLISH", "1")
	inv, code := configure(nil, &out)
	if inv == nil || inv.cfg.TestHooks != nil {
		t.Fatalf("configure = %+v, %d; want no test hooks:\n%s", inv, code, out.String())
	}
	if !strings.Contains(out.String(), "built without it") {
		t.Errorf("no warning about the ignored variable:\n%s", out.String())
	}
}
