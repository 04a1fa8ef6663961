//go:build !unix

package storetest

import "time"

// processCPU is not implemented on this platform.
func processCPU() (user, sys time.Duration, ok bool) { return 0, 0, false }
