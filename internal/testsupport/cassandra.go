package testsupport

import (
	"os"
	"testing"
)

// cassandraEnv names the environment variable holding the address
// (host:port) of the Cassandra node the tests run against.
const cassandraEnv = "CONCURSUS_CASSANDRA"

// CassandraAddr returns the address of the Cassandra node the tests run
// against, from CONCURSUS_CASSANDRA. When it is unset, t is skipped, except
// under CI=true, where it fails: CI (.ci/run) starts Cassandra and sets the
// variable, so a missing address there is a broken run, not a missing
// dependency. what names what needs Cassandra, for those messages: "the
// Cassandra suites", say.
func CassandraAddr(t testing.TB, what string) string {
	t.Helper()
	addr := os.Getenv(cassandraEnv)
	if addr == "" && os.Getenv("CI") == "true" {
		t.Fatalf("CI must run %s: .ci/run starts Cassandra and sets %s", what, cassandraEnv)
	}
	if addr == "" {
		t.Skipf("no Cassandra: start one with `scripts/cassandra.sh start` and set %s=127.0.0.1:9042 to run %s", cassandraEnv, what)
	}
	return addr
}
