// Package integration holds the long suites that need real services
// started by the project's scripts: Cassandra (scripts/cassandra.sh) and,
// later, several node processes. They are behind the "integration" build
// tag, which .ci/run turns on; the default `go test ./...` does not build
// them.
//
//	scripts/cassandra.sh start
//	CONCURSUS_CASSANDRA=127.0.0.1:9042 go test -tags integration -p 1 -v ./test/integration/
//
// Some tests stop and restart Cassandra: never run this package in
// parallel with other Cassandra suites.
package integration
