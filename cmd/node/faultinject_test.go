//go:build faultinject && unix

package main

import (
	"bytes"
	"testing"
)

func TestFaultInjectionKillBeforePublish(t *testing.T) {
	var out bytes.Buffer
	t.Setenv(faultKillBeforePublish, "3")
	inv, code := configure(nil, &out)
	if inv == nil || inv.cfg.TestHooks == nil || inv.cfg.TestHooks.Publisher == nil {
		t.Fatalf("configure = %+v, %d; want a publisher hook:\n%s", inv, code, out.String())
	}
	t.Setenv(faultKillBeforePublish, "0")
	if inv, code := configure(nil, &out); inv != nil || code != 2 {
		t.Fatalf("configure with batch 0 = %+v, %d; want a usage error", inv, code)
	}
}
