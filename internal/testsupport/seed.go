package testsupport

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// Seed is the seed of a seeded test: fromFlag when it is not zero, else
// the environment variable env (an unsigned whole number; t fails on
// anything else), else one taken from the clock. The caller logs it with
// the way to rerun the test with it.
func Seed(t testing.TB, fromFlag uint64, env string) uint64 {
	t.Helper()
	if fromFlag != 0 {
		return fromFlag
	}
	if v := os.Getenv(env); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: want an unsigned whole number", env, v)
		}
		return n
	}
	return uint64(time.Now().UnixNano())
}
