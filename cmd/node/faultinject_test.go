//go:build faultinject && unix

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/eventbus"
	"github.com/concursus-go/concursus/internal/testsupport"
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

func TestFaultInjectionHoldTakeover(t *testing.T) {
	var out bytes.Buffer
	hold := filepath.Join(t.TempDir(), "hold")
	if err := os.WriteFile(hold, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(faultHoldTakeover, hold)
	inv, code := configure(nil, &out)
	if inv == nil || inv.cfg.TestHooks == nil || inv.cfg.TestHooks.Claim == nil || inv.cfg.TestHooks.Publisher != nil {
		t.Fatalf("configure = %+v, %d; want a claim hook only:\n%s", inv, code, out.String())
	}
	claim := inv.cfg.TestHooks.Claim
	if c := claim("n2", eventbus.ClaimMine); c != eventbus.ClaimUnknown {
		t.Errorf("while the file exists: %v, want ClaimUnknown", c)
	}
	if c := claim("n2", eventbus.ClaimPresent); c != eventbus.ClaimPresent {
		t.Errorf("a present writer: %v, want ClaimPresent", c)
	}
	if err := os.Remove(hold); err != nil {
		t.Fatal(err)
	}
	if c := claim("n2", eventbus.ClaimMine); c != eventbus.ClaimMine {
		t.Errorf("once the file is gone: %v, want ClaimMine", c)
	}
}

func TestFaultInjectionClockFile(t *testing.T) {
	var out bytes.Buffer
	file := filepath.Join(t.TempDir(), "clock")
	t.Setenv(faultClockFile, file)
	inv, code := configure(nil, &out)
	if inv == nil || inv.cfg.Clock == nil {
		t.Fatalf("configure = %+v, %d; want a clock:\n%s", inv, code, out.String())
	}
	if d := time.Until(inv.cfg.Clock()); d > time.Second || d < -time.Second {
		t.Fatalf("without the file the clock is %v off", d)
	}
	if err := os.WriteFile(file, []byte("1h\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	testsupport.Eventually(t, 5*time.Second, "the clock an hour ahead", func() bool {
		d := time.Until(inv.cfg.Clock())
		return d > 59*time.Minute && d < 61*time.Minute
	})
}
