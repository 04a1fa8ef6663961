package main

import (
	"bytes"
	"strings"
	"testing"
)

// run's argument and environment handling: --help, bad flags, bad
// environment values and bad choices end with a usage error naming the
// problem, before anything is started.
func TestRunRejectsBadSettings(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		code    int
		mention string
	}{
		{name: "help", args: []string{"--help"}, code: 0, mention: "CONCURSUS_NATS_URL"},
		{name: "unknown flag", args: []string{"--no-such-flag"}, code: 2, mention: "no-such-flag"},
		{name: "stray argument", args: []string{"extra"}, code: 2, mention: "unexpected arguments"},
		{name: "bad port flag", args: []string{"--nats-port", "many"}, code: 2, mention: "not a whole number"},
		{name: "bad env", env: map[string]string{"CONCURSUS_NATS_PORT": "many"}, code: 2, mention: "$CONCURSUS_NATS_PORT"},
		{name: "bad duration", args: []string{"--request-timeout", "soon"}, code: 2, mention: "not a duration"},
		{name: "bad size", args: []string{"--max-payload", "huge"}, code: 2, mention: "not a size"},
		{name: "bad log level", args: []string{"--log-level", "loud"}, code: 2, mention: "log level"},
		{name: "bad log format", args: []string{"--log-format", "xml"}, code: 2, mention: "log format"},
		{name: "bad store", args: []string{"--store", "floppy"}, code: 2, mention: "want embedded or cassandra"},
		{name: "bad cassandra consistency", args: []string{"--store", "cassandra", "--cassandra-consistency", "MOSTLY"}, code: 2, mention: "MOSTLY"},
		{name: "bad bool", args: []string{"--cassandra-tls=perhaps"}, code: 2, mention: "perhaps"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var out bytes.Buffer
			if code := run(tt.args, &out); code != tt.code {
				t.Fatalf("run(%q) = %d, want %d; output:\n%s", tt.args, code, tt.code, out.String())
			}
			if !strings.Contains(out.String(), tt.mention) {
				t.Errorf("output does not mention %q:\n%s", tt.mention, out.String())
			}
		})
	}
}

func TestSizeValue(t *testing.T) {
	for in, want := range map[string]int{"1024": 1024, "1KiB": 1024, "2MiB": 2 << 20, " 3 MiB": 3 << 20} {
		var v sizeValue
		if err := v.Set(in); err != nil || int(v) != want {
			t.Errorf("Set(%q) = %d, %v; want %d", in, v, err, want)
		}
	}
	var v sizeValue
	for _, in := range []string{"", "-1", "1GB", "MiB"} {
		if err := v.Set(in); err == nil {
			t.Errorf("Set(%q) accepted", in)
		}
	}
}
