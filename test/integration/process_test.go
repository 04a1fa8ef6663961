//go:build integration

package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
)

// This file starts and watches the real processes of the multi-process
// suites: the cmd/node binary and a standalone nats-server, each in its own
// process group with its output in a file under t.TempDir(). Every process
// is killed (SIGKILL to its group) in t.Cleanup, and dies with the test
// binary too (Pdeathsig), so a failed or timed-out run leaks nothing.

// binaries are the executables a multi-process test runs.
type binaries struct {
	node, natsServer string
}

// buildBinaries builds cmd/node and nats-server (the module go.mod
// requires) into dir. cmd/node is built with the build tags given, e.g.
// "faultinject" for a node that can inject faults into itself (see
// cmd/node/faultinject.go); without them it is the production binary.
func buildBinaries(t *testing.T, dir string, nodeTags ...string) binaries {
	t.Helper()
	b := binaries{node: filepath.Join(dir, "node"), natsServer: filepath.Join(dir, "nats-server")}
	start := time.Now()
	for _, target := range []struct {
		out, pkg string
		tags     []string
	}{
		{b.node, "./cmd/node", nodeTags},
		{b.natsServer, "github.com/nats-io/nats-server/v2", nil},
	} {
		args := []string{"build", "-o", target.out}
		if len(target.tags) > 0 {
			args = append(args, "-tags", strings.Join(target.tags, ","))
		}
		cmd := exec.Command("go", append(args, target.pkg)...)
		cmd.Dir = repoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, out)
		}
	}
	t.Logf("built cmd/node (tags %q) and nats-server in %v", nodeTags, time.Since(start).Round(100*time.Millisecond))
	return b
}

// process is one child process of a test.
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	started time.Time
	done    chan struct{} // closed once the process has exited and been reaped
	err     error         // cmd.Wait's result; read it after done is closed
}

// startProcess runs bin with args in a process group of its own, its
// stdout and stderr going to <name>.log in dir. The child's environment is
// the test's without CONCURSUS_* variables (cmd/node reads its flags from
// those), plus env. The process is killed at cleanup if still running, and
// its log's tail is printed if the test failed.
func startProcess(t *testing.T, dir, name, bin string, args, env []string) *process {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONCURSUS_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = f, f
	// Pdeathsig kills the child when the test binary dies without running
	// its cleanups (a -timeout panic, a SIGKILL).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &process{name: name, logPath: logPath, cmd: cmd, started: time.Now(), done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s (pid %d) did not exit after SIGKILL", name, cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("--- last lines of %s (%s) ---\n%s", name, logPath, tail(logPath, 40))
		}
	})
	return p
}

// pid is the process's id (and its process group's).
func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process's group, unless it has exited (its
// group id could be reused then).
func (p *process) signal(sig syscall.Signal) error {
	if p.exited() {
		return fmt.Errorf("%s has already exited: %v", p.name, p.err)
	}
	return syscall.Kill(-p.pid(), sig)
}

// kill sends SIGKILL to the group of a process still running.
func (p *process) kill() { _ = p.signal(syscall.SIGKILL) }

// wait waits up to within for the process to exit; exited is false if it
// is still running, err is its exit error (nil for status 0).
func (p *process) wait(within time.Duration) (exited bool, err error) {
	select {
	case <-p.done:
		return true, p.err
	case <-time.After(within):
		return false, nil
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// startNATS runs nats-server on a free loopback port and returns it with
// its client URL (read from the ports file the server writes, so no port
// is guessed).
func startNATS(t *testing.T, bin, dir string, extra ...string) (*process, string) {
	t.Helper()
	portsDir := filepath.Join(dir, "nats-ports")
	if err := os.RemoveAll(portsDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(portsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-a", "127.0.0.1", "-p", "-1", "--ports_file_dir", portsDir}, extra...)
	p := startProcess(t, dir, "nats-server", bin, args, nil)
	var url string
	waitUntil(t, 20*time.Second, "nats-server to write its ports file", func() bool {
		if p.exited() {
			t.Fatalf("nats-server exited: %v\n%s", p.err, tail(p.logPath, 20))
		}
		files, _ := filepath.Glob(filepath.Join(portsDir, "*.ports"))
		if len(files) == 0 {
			return false
		}
		data, err := os.ReadFile(files[0])
		if err != nil {
			return false
		}
		var ports struct {
			NATS []string `json:"nats"`
		}
		if json.Unmarshal(data, &ports) != nil || len(ports.NATS) == 0 {
			return false
		}
		url = ports.NATS[0]
		return true
	})
	return p, url
}

// connectNATS connects to url with opts and closes the connection at
// cleanup.
func connectNATS(t *testing.T, url, name string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	opts = append([]nats.Option{nats.Name(name), nats.MaxReconnects(-1)}, opts...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connecting %s to NATS at %s: %v", name, url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// gatherClusterInfo sends one request on the admin cluster subject and
// collects the replies (one per node) until want have arrived or wait has
// passed.
func gatherClusterInfo(nc *nats.Conn, prefix string, want int, wait time.Duration) (map[string]api.ClusterInfo, error) {
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest(api.AdminClusterSubject(prefix), inbox, nil); err != nil {
		return nil, err
	}
	out := make(map[string]api.ClusterInfo)
	deadline := time.Now().Add(wait)
	for len(out) < want {
		m, err := sub.NextMsg(time.Until(deadline))
		if errors.Is(err, nats.ErrTimeout) {
			break
		}
		if err != nil {
			return out, err
		}
		var info api.ClusterInfo
		if err := json.Unmarshal(m.Data, &info); err != nil {
			return out, fmt.Errorf("undecodable cluster info %q: %w", m.Data, err)
		}
		out[info.NodeID] = info
	}
	return out, nil
}

// nodeClusterInfo asks one node, by id, for its ClusterInfo.
func nodeClusterInfo(nc *nats.Conn, prefix, nodeID string, timeout time.Duration) (api.ClusterInfo, error) {
	var info api.ClusterInfo
	m, err := nc.Request(api.NodeAdminSubject(prefix, nodeID), nil, timeout)
	if err != nil {
		return info, err
	}
	err = json.Unmarshal(m.Data, &info)
	return info, err
}

// inRing returns the ids of the members a node routes to.
func inRing(info api.ClusterInfo) []string {
	var ids []string
	for _, m := range info.Members {
		if m.InRing {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

// memberState returns the state in which info's node sees member id ("" if
// it does not know it).
func memberState(info api.ClusterInfo, id string) string {
	for _, m := range info.Members {
		if m.ID == id {
			return m.State
		}
	}
	return ""
}

// logSummary counts a JSON log's warnings and errors by message.
func logSummary(path string) (warn, errs map[string]int) {
	warn, errs = make(map[string]int), make(map[string]int)
	data, err := os.ReadFile(path)
	if err != nil {
		errs["reading the log: "+err.Error()]++
		return warn, errs
	}
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		var rec struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if len(line) == 0 || json.Unmarshal(line, &rec) != nil {
			continue
		}
		switch rec.Level {
		case "WARN":
			warn[rec.Msg]++
		case "ERROR":
			errs[rec.Msg]++
		}
	}
	return warn, errs
}
