package bolt

import (
	"fmt"
	"os"
	"time"
)

// Options configure Open. The zero value of a field means its default.
type Options struct {
	// Timeout is how long Open waits for the file lock while another
	// process (or another DB in this process) holds the file, before failing
	// with ErrInUse. Default 1s; must not be negative.
	Timeout time.Duration

	// NoSync skips the fsync after each commit. Writes become much faster
	// and are NOT durable: a power loss or OS crash can lose acknowledged
	// events or corrupt the file. Only for tests and benchmarks. Default
	// false.
	NoSync bool

	// InitialMmapSize is the initial size of the memory map, in bytes. A
	// value at least as large as the file avoids remapping as it grows
	// (remapping waits for open read transactions). Default 0: bbolt's own
	// growth policy. Must not be negative.
	InitialMmapSize int

	// FileMode is the permission of a newly created file. Default 0600.
	FileMode os.FileMode
}

// Default values of Options.
const (
	DefaultTimeout  = time.Second
	DefaultFileMode = os.FileMode(0o600)
)

// DefaultOptions returns the options Open uses when given the zero Options.
func DefaultOptions() Options {
	return Options{Timeout: DefaultTimeout, FileMode: DefaultFileMode}
}

// withDefaults returns a copy of o with zero fields set to their defaults.
func (o Options) withDefaults() Options {
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.FileMode == 0 {
		o.FileMode = DefaultFileMode
	}
	return o
}

// Validate reports the first invalid field, naming its value.
func (o Options) Validate() error {
	if o.Timeout < 0 {
		return fmt.Errorf("bolt: Options.Timeout is %s, must not be negative", o.Timeout)
	}
	if o.InitialMmapSize < 0 {
		return fmt.Errorf("bolt: Options.InitialMmapSize is %d, must not be negative", o.InitialMmapSize)
	}
	if o.FileMode&^os.ModePerm != 0 {
		return fmt.Errorf("bolt: Options.FileMode is %s, only permission bits are allowed", o.FileMode)
	}
	return nil
}
