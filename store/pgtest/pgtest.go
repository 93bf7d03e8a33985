// Package pgtest starts throwaway PostgreSQL clusters for tests: initdb in a
// temporary directory, pg_ctl on a free loopback port, removed afterwards.
// As root the cluster runs as the system user "postgres" (PostgreSQL
// refuses to run as root). Without PostgreSQL's binaries a test skips, and
// fails under CI=true; scripts/postgres.sh installs them.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Install is the command that installs what the clusters need.
const Install = "sudo apt-get install -y postgresql"

// ErrMissing is returned by Start when PostgreSQL's binaries are not found.
var ErrMissing = errors.New("pgtest: PostgreSQL (initdb, pg_ctl) is not installed; install it with: " + Install)

// BinDir returns the directory of initdb and pg_ctl: Debian's newest
// /usr/lib/postgresql/N/bin, or the one on PATH.
func BinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		d := filepath.Dir(p)
		if isExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	return "", ErrMissing
}

func version(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode()&0o111 != 0
}

// Cluster is a running throwaway PostgreSQL server.
type Cluster struct {
	bin  string
	dir  string // removed by Stop
	data string
	Port int
	// runAs is the system user the server runs as, "" for this process's.
	runAs string
}

// Start creates and starts a cluster with fsync on and PostgreSQL's other
// defaults, listening on 127.0.0.1 only.
func Start() (*Cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "runlog-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	c := &Cluster{bin: bin, dir: dir, data: filepath.Join(dir, "data")}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: running as root needs the system user postgres (Debian's postgresql package creates it): %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: %w", err)
		}
		c.runAs = "postgres"
	}
	if out, err := c.cmd("initdb", "-D", c.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			lastErr = err
			continue
		}
		c.Port = port
		opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s -c max_connections=200", port, c.dir)
		out, err := c.cmd("pg_ctl", "-D", c.data, "-l", filepath.Join(c.dir, "server.log"), "-w", "-t", "60", "-o", opts, "start").CombinedOutput()
		if err == nil {
			return c, nil
		}
		lastErr = fmt.Errorf("pg_ctl start: %w\n%s", err, out)
	}
	os.RemoveAll(dir)
	return nil, fmt.Errorf("pgtest: %w", lastErr)
}

func (c *Cluster) cmd(name string, args ...string) *exec.Cmd {
	path := filepath.Join(c.bin, name)
	if c.runAs == "" {
		return exec.Command(path, args...)
	}
	cmd := exec.Command("runuser", append([]string{"-u", c.runAs, "--", path}, args...)...)
	cmd.Dir = c.dir
	return cmd
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// URL returns the connection string of database db.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// CreateDB creates a database with a fresh random name and returns its URL.
func (c *Cluster) CreateDB(ctx context.Context) (string, error) {
	var b [6]byte
	rand.Read(b[:])
	name := "t" + hex.EncodeToString(b[:])
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return "", fmt.Errorf("pgtest: connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("pgtest: create database: %w", err)
	}
	return c.URL(name), nil
}

// Restart restarts the server with pg_ctl restart -m mode ("immediate"
// stops it as a crash would: no checkpoint, recovery from the WAL).
func (c *Cluster) Restart(mode string) error {
	out, err := c.cmd("pg_ctl", "-D", c.data, "-w", "-t", "60", "-m", mode, "-l", filepath.Join(c.dir, "server.log"), "restart").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtest: pg_ctl restart: %w\n%s", err, out)
	}
	return nil
}

// Stop stops the server and removes its directory.
func (c *Cluster) Stop() error {
	out, err := c.cmd("pg_ctl", "-D", c.data, "-w", "-m", "immediate", "stop").CombinedOutput()
	rmErr := os.RemoveAll(c.dir)
	if err != nil {
		return fmt.Errorf("pgtest: pg_ctl stop: %w\n%s", err, out)
	}
	return rmErr
}

// Log returns the server's log so far.
func (c *Cluster) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
	return string(b)
}

// New starts a cluster for one test and stops it on cleanup. Without
// PostgreSQL it skips the test, or fails it under CI=true.
func New(t testing.TB) *Cluster {
	t.Helper()
	c, err := Start()
	if err != nil {
		missing(t, err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stop postgres: %v", err)
		}
	})
	return c
}

func missing(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrMissing) && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	t.Fatal(err)
}

var shared struct {
	once sync.Once
	c    *Cluster
	err  error
}

// DB returns the URL of a new empty database on the package's shared
// cluster, started by the first call; Main stops it. Without PostgreSQL it
// skips the test, or fails it under CI=true.
func DB(t testing.TB) string {
	t.Helper()
	shared.once.Do(func() { shared.c, shared.err = Start() })
	if shared.err != nil {
		missing(t, shared.err)
	}
	url, err := shared.c.CreateDB(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return url
}

// Main runs the tests and stops the shared cluster: call it from TestMain,
// os.Exit(pgtest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if shared.c != nil {
		if err := shared.c.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	return code
}
