package router

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestDefaultConfigIsValid(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	if cfg.PartitionCount != 1021 || cfg.ReplicationFactor != 20 || cfg.LoadFactor != 1.25 {
		t.Fatalf("DefaultConfig() = %+v, want 1021/20/1.25", cfg)
	}
}

func TestValidate(t *testing.T) {
	ok := DefaultConfig()
	with := func(f func(*Config)) Config { c := ok; f(&c); return c }
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none means valid
	}{
		{"defaults", ok, nil},
		{"smallest", Config{PartitionCount: 1, ReplicationFactor: 2, LoadFactor: math.Nextafter(1, 2)}, nil},
		{"largest", Config{PartitionCount: MaxPartitionCount, ReplicationFactor: MaxReplicationFactor, LoadFactor: 1e9}, nil},
		{"zero config", Config{}, []string{"PartitionCount 0", "ReplicationFactor 0", "LoadFactor 0"}},
		{"negative partitions", with(func(c *Config) { c.PartitionCount = -1 }), []string{"PartitionCount -1 must be between 1 and 65536"}},
		{"too many partitions", with(func(c *Config) { c.PartitionCount = MaxPartitionCount + 1 }), []string{"PartitionCount 65537"}},
		{"one virtual node", with(func(c *Config) { c.ReplicationFactor = 1 }), []string{"ReplicationFactor 1 must be between 2 and 1024"}},
		{"too many virtual nodes", with(func(c *Config) { c.ReplicationFactor = 1025 }), []string{"ReplicationFactor 1025"}},
		{"load factor 1", with(func(c *Config) { c.LoadFactor = 1 }), []string{"LoadFactor 1 must be finite and greater than 1"}},
		{"load factor below 1", with(func(c *Config) { c.LoadFactor = 0.9 }), []string{"LoadFactor 0.9"}},
		{"load factor NaN", with(func(c *Config) { c.LoadFactor = math.NaN() }), []string{"LoadFactor NaN"}},
		{"load factor +Inf", with(func(c *Config) { c.LoadFactor = math.Inf(1) }), []string{"LoadFactor +Inf"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to mention %q", err, w)
				}
			}
			// New rejects the same config, unless its zero fields are
			// simply filled with defaults.
			if _, nerr := New(tt.cfg, []string{"a"}); nerr == nil && tt.name != "zero config" {
				t.Errorf("New accepted a config Validate rejects")
			}
		})
	}
}

func TestNewFillsZeroFieldsWithDefaults(t *testing.T) {
	r := mustNew(t, Config{}, []string{"a", "b"})
	if got := r.Config(); got != DefaultConfig() {
		t.Fatalf("Config() = %+v, want defaults %+v", got, DefaultConfig())
	}
	r = mustNew(t, Config{PartitionCount: 7}, []string{"a"})
	if got := r.Config(); got.PartitionCount != 7 || got.ReplicationFactor != 20 || got.LoadFactor != 1.25 {
		t.Fatalf("Config() = %+v, want PartitionCount 7 and defaults elsewhere", got)
	}
	if r.PartitionCount() != 7 {
		t.Fatalf("PartitionCount() = %d, want 7", r.PartitionCount())
	}
}

func TestMaxLoadFormula(t *testing.T) {
	tests := []struct {
		cfg  Config
		n    int
		want int
	}{
		{DefaultConfig(), 1, 1021},                           // capped at PartitionCount
		{DefaultConfig(), 2, 638},                            // ceil(510 × 1.25)
		{DefaultConfig(), 3, 425},                            // ceil(340 × 1.25)
		{DefaultConfig(), 64, 19},                            // ceil(15 × 1.25), not ceil(15.95 × 1.25) = 20
		{DefaultConfig(), 1021, 2},                           // ceil(1 × 1.25)
		{Config{PartitionCount: 10, LoadFactor: 1.01}, 3, 4}, // ceil(3.03)
		{Config{PartitionCount: 10, LoadFactor: 3}, 2, 10},   // 15 capped at 10
	}
	for _, tt := range tests {
		if got := tt.cfg.maxLoad(tt.n); got != tt.want {
			t.Errorf("%+v maxLoad(%d) = %d, want %d", tt.cfg, tt.n, got, tt.want)
		}
	}
}
