//go:build faultinject && unix

package main

import (
	"bytes"
	"testing"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/storage/memory"
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

func TestFaultInjectionKillBeforeRecord(t *testing.T) {
	var out bytes.Buffer
	t.Setenv(faultKillBeforeRecord, "1")
	inv, code := configure(nil, &out)
	if inv == nil || inv.cfg.TestHooks == nil || inv.cfg.TestHooks.Commands == nil || inv.cfg.TestHooks.Publisher != nil {
		t.Fatalf("configure = %+v, %d; want a command-log hook only:\n%s", inv, code, out.String())
	}
	// The wrapper keeps the Inserter of the log it wraps.
	if _, ok := inv.cfg.TestHooks.Commands(memory.NewCommandLog()).(commandlog.Inserter); !ok {
		t.Error("the wrapped memory command log lost its Insert")
	}
	t.Setenv(faultKillBeforeRecord, "x")
	if inv, code := configure(nil, &out); inv != nil || code != 2 {
		t.Fatalf("configure with batch x = %+v, %d; want a usage error", inv, code)
	}
}
