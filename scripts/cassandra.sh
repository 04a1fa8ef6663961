#!/usr/bin/env bash
#
# cassandra.sh - run a real single-node Apache Cassandra 5.0 for local
# development and integration tests, without Docker and without Apache
# download mirrors.
#
# Cassandra itself (org.apache.cassandra:cassandra-all) and its runtime
# dependencies are resolved from Maven Central with `mvn`, copied into a
# jar cache, and org.apache.cassandra.service.CassandraDaemon is launched
# directly with `java` (17) in the background. The node listens for CQL on
# 127.0.0.1:${CASSANDRA_PORT:-9042}; JMX is not enabled.
#
# Usage:
#   scripts/cassandra.sh start          resolve jars (first time only), write
#                                       config, launch, wait for CQL
#   scripts/cassandra.sh stop           SIGTERM, wait, then SIGKILL if needed
#   scripts/cassandra.sh status         exit 0 if running and answering CQL,
#                                       1 otherwise
#   scripts/cassandra.sh logs [-f] [N]  show the last N (default 100) lines
#                                       of system.log; -f follows it
#   scripts/cassandra.sh --help
#
# Environment:
#   CASSANDRA_HOME_DIR       cache/state root
#                            (default: $HOME/.cache/concursus-cassandra)
#                              lib-<version>/  resolved jars (jar cache)
#                              state/          cassandra.yaml, logback.xml,
#                                              system.log, stdout.log, pid
#                              resolve/        throwaway pom + maven.log
#   CASSANDRA_DATA_DIR       data, commitlog, hints, caches
#                            (default: $CASSANDRA_HOME_DIR/data)
#   CASSANDRA_PORT           CQL native transport port (default: 9042)
#   CASSANDRA_HEAP           JVM heap, used for -Xms and -Xmx (default: 1G)
#   CASSANDRA_START_TIMEOUT  seconds `start` waits for CQL (default: 300)
#   CASSANDRA_VERSION        cassandra-all version (default: 5.0.9)
#   CASSANDRA_MAVEN_REPO     Maven local repository to use
#                            (default: Maven's own, usually ~/.m2/repository)
#   JAVA                     java binary (default: java on PATH; must be 17)
#
# The storage port (7000) is fixed; two instances on one machine are not
# supported. To start from an empty database: stop, then remove
# $CASSANDRA_DATA_DIR.

set -euo pipefail

CASSANDRA_VERSION="${CASSANDRA_VERSION:-5.0.9}"
HOME_DIR="${CASSANDRA_HOME_DIR:-$HOME/.cache/concursus-cassandra}"
DATA_DIR="${CASSANDRA_DATA_DIR:-$HOME_DIR/data}"
PORT="${CASSANDRA_PORT:-9042}"
HEAP="${CASSANDRA_HEAP:-1G}"
START_TIMEOUT="${CASSANDRA_START_TIMEOUT:-300}"
JAVA="${JAVA:-java}"
if ! [[ "$PORT" =~ ^[0-9]+$ ]] || ((PORT < 1 || PORT > 65535)); then
	echo "cassandra.sh: error: CASSANDRA_PORT must be a TCP port, got '$PORT'" >&2
	exit 2
fi
if ! [[ "$START_TIMEOUT" =~ ^[0-9]+$ ]]; then
	echo "cassandra.sh: error: CASSANDRA_START_TIMEOUT must be whole seconds" >&2
	exit 2
fi
HOST=127.0.0.1
STORAGE_PORT=7000
DEPENDENCY_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.6.1"

LIB_DIR="$HOME_DIR/lib-$CASSANDRA_VERSION"
RESOLVE_DIR="$HOME_DIR/resolve"
STATE_DIR="$HOME_DIR/state"
PID_FILE="$STATE_DIR/cassandra.pid"
LOG_FILE="$STATE_DIR/system.log"
OUT_FILE="$STATE_DIR/stdout.log"
YAML_FILE="$STATE_DIR/cassandra.yaml"
LOGBACK_FILE="$STATE_DIR/logback.xml"
READY_MARKER="Starting listening for CQL clients"
# 5.0 logs one or the other depending on where startup fails.
FAILURE_MARKER="Exception encountered during startup|Fatal exception during initialization"

log() { printf 'cassandra.sh: %s\n' "$*"; }
die() { printf 'cassandra.sh: error: %s\n' "$*" >&2; exit 1; }

usage() {
	cat <<EOF
Usage: $(basename "$0") start|stop|status|logs [-f] [N]|--help

Runs a single-node Apache Cassandra $CASSANDRA_VERSION on $HOST:$PORT, resolved
from Maven Central (no Docker, no Apache mirrors). Needs java 17 and mvn.

  start    resolve jars on first use, write config, launch the daemon in the
           background and wait until CQL answers (timeout ${START_TIMEOUT}s)
  stop     stop the daemon (SIGTERM, then SIGKILL after 60s); ok if not running
  status   exit 0 if running and answering CQL, 1 otherwise
  logs     print the last N (default 100) lines of system.log; -f to follow

Environment (current value):
  CASSANDRA_HOME_DIR       $HOME_DIR
  CASSANDRA_DATA_DIR       $DATA_DIR
  CASSANDRA_PORT           $PORT
  CASSANDRA_HEAP           $HEAP
  CASSANDRA_START_TIMEOUT  $START_TIMEOUT
  CASSANDRA_VERSION        $CASSANDRA_VERSION
  CASSANDRA_MAVEN_REPO     ${CASSANDRA_MAVEN_REPO:-(maven default)}
EOF
}

# ---------------------------------------------------------------- helpers

port_open() {
	# bash's /dev/tcp: succeeds iff something accepts on host:port.
	(exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# Prints the pid from the pid file if that process is alive and is our
# CassandraDaemon (guards against a stale pid reused by something else).
running_pid() {
	local pid
	[[ -f "$PID_FILE" ]] || return 1
	pid="$(cat "$PID_FILE" 2>/dev/null || true)"
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	if [[ -r "/proc/$pid/cmdline" ]]; then
		tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'CassandraDaemon' || return 1
	fi
	printf '%s\n' "$pid"
}

answering() {
	port_open "$PORT" && [[ -f "$LOG_FILE" ]] && grep -q "$READY_MARKER" "$LOG_FILE"
}

lock() {
	mkdir -p "$STATE_DIR"
	if command -v flock >/dev/null 2>&1; then
		exec 9>"$STATE_DIR/lock"
		if ! flock -n 9; then
			log "another cassandra.sh holds $STATE_DIR/lock; waiting…"
			flock -w $((START_TIMEOUT + 120)) 9 || die "could not lock $STATE_DIR/lock"
		fi
	fi
}

# ------------------------------------------------------------- resolution

write_pom() {
	mkdir -p "$RESOLVE_DIR"
	cat >"$RESOLVE_DIR/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/cassandra.sh; only used to resolve jars. -->
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 https://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.concursus</groupId>
  <artifactId>cassandra-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>$CASSANDRA_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
}

resolve() {
	if [[ -f "$LIB_DIR/.complete" ]]; then
		log "jar cache ok: $LIB_DIR ($(find "$LIB_DIR" -name '*.jar' | wc -l) jars)"
		return 0
	fi
	command -v mvn >/dev/null 2>&1 || die "mvn not found on PATH"
	log "resolving cassandra-all $CASSANDRA_VERSION and runtime dependencies from Maven Central…"
	write_pom
	local tmp="$LIB_DIR.tmp.$$" mvn_log="$RESOLVE_DIR/maven.log" t0=$SECONDS
	rm -rf "$tmp"
	local -a args=(-B -f "$RESOLVE_DIR/pom.xml")
	[[ -n "${CASSANDRA_MAVEN_REPO:-}" ]] && args+=("-Dmaven.repo.local=$CASSANDRA_MAVEN_REPO")
	args+=("$DEPENDENCY_PLUGIN:copy-dependencies" -DincludeScope=runtime
		"-DoutputDirectory=$tmp" -Dmdep.useRepositoryLayout=false)
	mvn "${args[@]}" >"$mvn_log" 2>&1 9>&- &
	local mpid=$! rc=0 next=$((SECONDS + 5))
	while kill -0 "$mpid" 2>/dev/null; do
		if ((SECONDS >= next)); then
			log "  … still resolving ($((SECONDS - t0))s, $(grep -c 'Downloaded from' "$mvn_log" || true) files downloaded)"
			next=$((SECONDS + 5))
		fi
		sleep 1
	done
	wait "$mpid" || rc=$?
	if ((rc != 0)); then
		grep -E '^\[ERROR\]' "$mvn_log" | head -n 20 >&2 || true
		rm -rf "$tmp"
		die "maven resolution failed (exit $rc); full log: $mvn_log"
	fi
	compgen -G "$tmp/cassandra-all-$CASSANDRA_VERSION.jar" >/dev/null ||
		die "cassandra-all-$CASSANDRA_VERSION.jar missing after resolution; see $mvn_log"
	printf '%s\n' "$CASSANDRA_VERSION" >"$tmp/.complete"
	rm -rf "$LIB_DIR"
	mv "$tmp" "$LIB_DIR"
	log "resolved $(find "$LIB_DIR" -name '*.jar' | wc -l) jars ($(du -sh "$LIB_DIR" | cut -f1)) in $((SECONDS - t0))s into $LIB_DIR"
}

# ------------------------------------------------------------------ config

write_config() {
	mkdir -p "$STATE_DIR" "$STATE_DIR/triggers" \
		"$DATA_DIR/data" "$DATA_DIR/commitlog" "$DATA_DIR/saved_caches" \
		"$DATA_DIR/hints" "$DATA_DIR/cdc_raw"
	cat >"$YAML_FILE" <<EOF
# Generated by scripts/cassandra.sh on each start; edits are overwritten.
# Single-node development settings for Cassandra $CASSANDRA_VERSION.
cluster_name: concursus-dev
num_tokens: 16
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "$HOST:$STORAGE_PORT"

listen_address: $HOST
rpc_address: $HOST
storage_port: $STORAGE_PORT
start_native_transport: true
native_transport_port: $PORT

data_file_directories:
  - $DATA_DIR/data
commitlog_directory: $DATA_DIR/commitlog
saved_caches_directory: $DATA_DIR/saved_caches
hints_directory: $DATA_DIR/hints
cdc_raw_directory: $DATA_DIR/cdc_raw

commitlog_sync: periodic
commitlog_sync_period: 10000ms
commitlog_segment_size: 32MiB
auto_snapshot: false
snapshot_on_duplicate_row_detection: false
disk_failure_policy: stop
commit_failure_policy: stop

# Timeouts. LWT (IF NOT EXISTS / Paxos) contention gets a little more room
# than the 1s default because this node shares 2 cores with the tests.
read_request_timeout: 5000ms
range_request_timeout: 10000ms
write_request_timeout: 2000ms
counter_write_request_timeout: 5000ms
cas_contention_timeout: 2000ms
truncate_request_timeout: 60000ms
request_timeout: 10000ms

# Paxos v2: fewer round trips for conditional writes (the event log's
# fenced appends, the command log's inserts) and for serial reads (head
# checks).
paxos_variant: v2

# Keep a small footprint.
concurrent_reads: 16
concurrent_writes: 16
concurrent_counter_writes: 16
concurrent_compactors: 1
memtable_heap_space: 256MiB
memtable_offheap_space: 256MiB
EOF
	cat >"$LOGBACK_FILE" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/cassandra.sh. -->
<configuration scan="false">
  <appender name="SYSTEMLOG" class="ch.qos.logback.core.FileAppender">
    <file>$LOG_FILE</file>
    <append>true</append>
    <encoder>
      <pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern>
    </encoder>
  </appender>
  <logger name="org.apache.cassandra" level="INFO"/>
  <logger name="com.thinkaurelius.thrift" level="ERROR"/>
  <root level="INFO">
    <appender-ref ref="SYSTEMLOG"/>
  </root>
</configuration>
EOF
}

# ------------------------------------------------------------------ launch

java_major() {
	# sed prints the first match and quits, so nothing writes to a closed
	# pipe (which pipefail would turn into a failure).
	"$JAVA" -XshowSettings:properties -version 2>&1 |
		sed -n 's/^ *java\.specification\.version = //p;T;q' || true
}

launch() {
	local jamm
	jamm="$(find "$LIB_DIR" -maxdepth 1 -name 'jamm-*.jar' -print -quit)"
	[[ -n "$jamm" ]] || die "jamm jar not found in $LIB_DIR"

	local -a jvm=(
		"-Xms$HEAP" "-Xmx$HEAP"
		# GC (from conf/jvm17-server.options).
		-XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1
		-XX:G1RSetUpdatingPauseTimePercent=5 -XX:MaxGCPauseMillis=300
		-XX:InitiatingHeapOccupancyPercent=70
		-XX:+UseTLAB -XX:+ResizeTLAB -XX:+PerfDisableSharedMem
		-XX:+ExitOnOutOfMemoryError
		"-XX:ErrorFile=$STATE_DIR/hs_err_%p.log"
		-Djava.net.preferIPv4Stack=true
		# JPMS exports/opens Cassandra needs on Java 17.
		-Djdk.attach.allowAttachSelf=true
		--add-exports java.base/jdk.internal.misc=ALL-UNNAMED
		--add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
		--add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
		--add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
		--add-exports java.sql/java.sql=ALL-UNNAMED
		--add-exports java.base/java.lang.ref=ALL-UNNAMED
		--add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
		--add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED
		--add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED
		--add-opens java.base/java.lang.module=ALL-UNNAMED
		--add-opens java.base/jdk.internal.loader=ALL-UNNAMED
		--add-opens java.base/jdk.internal.ref=ALL-UNNAMED
		--add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
		--add-opens java.base/jdk.internal.math=ALL-UNNAMED
		--add-opens java.base/jdk.internal.module=ALL-UNNAMED
		--add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
		--add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
		--add-opens java.base/sun.nio.ch=ALL-UNNAMED
		--add-opens java.base/java.io=ALL-UNNAMED
		--add-opens java.base/java.lang.reflect=ALL-UNNAMED
		--add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED
		--add-opens java.base/java.lang=ALL-UNNAMED
		--add-opens java.base/java.util=ALL-UNNAMED
		# Netty on Java 17.
		-Dio.netty.tryReflectionSetAccessible=true
		-Dio.netty.allocator.useCacheForAllThreads=true
		-Dio.netty.allocator.maxOrder=11
		# Cassandra.
		"-javaagent:$jamm"
		-Dcassandra-foreground=yes
		"-Dcassandra.config=file://$YAML_FILE"
		"-Dcassandra.storagedir=$DATA_DIR"
		"-Dcassandra.logdir=$STATE_DIR"
		"-Dcassandra.triggers_dir=$STATE_DIR/triggers"
		"-Dlogback.configurationFile=file://$LOGBACK_FILE"
		-Dcassandra.unsafesystem=true
		-Dcassandra.skip_wait_for_gossip_to_settle=0
		-cp "$STATE_DIR:$LIB_DIR/*"
		org.apache.cassandra.service.CassandraDaemon
	)

	[[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.prev"
	[[ -f "$OUT_FILE" ]] && mv -f "$OUT_FILE" "$OUT_FILE.prev"
	rm -f "$PID_FILE"
	# New session (when setsid exists) so the daemon outlives the calling
	# shell's process group; the wrapper records the pid java will have.
	local -a detach=()
	command -v setsid >/dev/null 2>&1 && detach=(setsid)
	# shellcheck disable=SC2016 # $$ and $@ are for the inner shell
	nohup "${detach[@]}" bash -c 'echo $$ >"$0"; exec "$@"' \
		"$PID_FILE" "$JAVA" "${jvm[@]}" </dev/null >"$OUT_FILE" 2>&1 9>&- &
	local i
	for i in $(seq 1 50); do
		[[ -s "$PID_FILE" ]] && break
		sleep 0.1
	done
	[[ -s "$PID_FILE" ]] || die "daemon did not record its pid; see $OUT_FILE"
	log "launched CassandraDaemon pid $(cat "$PID_FILE") (heap $HEAP, java $(java_major)); log: $LOG_FILE"
}

print_failure() {
	# Long lines (e.g. the "Node configuration" dump) are cut to 400 chars.
	local f pattern
	for pattern in "$FAILURE_MARKER" '^ERROR' 'Exception'; do
		for f in "$LOG_FILE" "$OUT_FILE"; do
			[[ -f "$f" ]] || continue
			if grep -qE -- "$pattern" "$f"; then
				printf -- '--- %s (first match of %s):\n' "$f" "$pattern" >&2
				grep -m 1 -A 25 -E -- "$pattern" "$f" | cut -c 1-400 >&2 || true
				return 0
			fi
		done
	done
	for f in "$LOG_FILE" "$OUT_FILE"; do
		[[ -s "$f" ]] || continue
		printf -- '--- last lines of %s:\n' "$f" >&2
		tail -n 30 "$f" | cut -c 1-400 >&2
	done
}

wait_ready() {
	local t0=$1 deadline=$(($1 + START_TIMEOUT)) next=$((SECONDS + 5)) pid
	while :; do
		if answering; then
			return 0
		fi
		if ! pid="$(running_pid)"; then
			log "CassandraDaemon exited during startup after $((SECONDS - t0))s" >&2
			print_failure
			return 1
		fi
		if ((SECONDS >= deadline)); then
			log "timed out after ${START_TIMEOUT}s waiting for CQL on $HOST:$PORT; stopping pid $pid" >&2
			print_failure
			stop_daemon >/dev/null || true
			return 1
		fi
		if ((SECONDS >= next)); then
			log "  … waiting for CQL on $HOST:$PORT ($((SECONDS - t0))s)"
			next=$((SECONDS + 5))
		fi
		sleep 1
	done
}

# ---------------------------------------------------------------- commands

cmd_start() {
	local t0=$SECONDS pid
	lock
	if pid="$(running_pid)"; then
		if answering; then
			log "already running (pid $pid) and answering on $HOST:$PORT"
			return 0
		fi
		log "pid $pid is running but not answering yet; waiting for it"
	else
		if port_open "$PORT"; then
			die "$HOST:$PORT is already in use by another process"
		fi
		if port_open "$STORAGE_PORT"; then
			die "$HOST:$STORAGE_PORT (storage port) is already in use by another process"
		fi
		command -v "$JAVA" >/dev/null 2>&1 || die "java not found (set JAVA)"
		local major
		major="$(java_major)"
		[[ "$major" == 17 ]] || log "warning: java $major detected; Cassandra 5.0 is run here with Java 17 flags" >&2
		resolve
		write_config
		launch
	fi
	if ! wait_ready "$t0"; then
		exit 1
	fi
	log "cassandra ready on $HOST:$PORT after $((SECONDS - t0)) s"
}

# Stops the daemon if running. Returns 0 either way.
stop_daemon() {
	local pid i
	if ! pid="$(running_pid)"; then
		rm -f "$PID_FILE"
		log "not running"
		return 0
	fi
	log "stopping CassandraDaemon pid $pid (SIGTERM)…"
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 1 60); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 1
		((i % 10 == 0)) && log "  … still stopping (${i}s)"
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "pid $pid still alive after 60s; sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		for i in $(seq 1 10); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 1
		done
	fi
	rm -f "$PID_FILE"
	log "stopped"
}

cmd_stop() {
	lock
	stop_daemon
}

cmd_status() {
	local pid
	if pid="$(running_pid)"; then
		if answering; then
			log "running (pid $pid), CQL answering on $HOST:$PORT"
			return 0
		fi
		log "running (pid $pid) but CQL not answering on $HOST:$PORT"
		return 1
	fi
	log "not running"
	return 1
}

cmd_logs() {
	local follow=0 lines=100
	while (($#)); do
		case "$1" in
		-f | --follow) follow=1 ;;
		[0-9]*) lines="$1" ;;
		*) die "logs: unexpected argument '$1'" ;;
		esac
		shift
	done
	[[ -f "$LOG_FILE" ]] || die "no log yet at $LOG_FILE"
	if ((follow)); then
		exec tail -n "$lines" -F "$LOG_FILE"
	fi
	tail -n "$lines" "$LOG_FILE"
}

main() {
	case "${1:-}" in
	start) cmd_start ;;
	stop) cmd_stop ;;
	status) cmd_status ;;
	logs) shift; cmd_logs "$@" ;;
	-h | --help | help) usage ;;
	"") usage >&2; exit 2 ;;
	*) printf 'cassandra.sh: unknown command: %s\n\n' "$1" >&2; usage >&2; exit 2 ;;
	esac
}

main "$@"
