package pgtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a throwaway Postgres cluster of one test, which the test may
// stop and start again (a database outage). Unlike the shared server of
// NewDatabase it belongs to the test alone; it is stopped and removed at
// the test's cleanup.
type Cluster struct {
	bindir string
	dir    string
	data   string
	port   int
	wrap   []string

	mu      sync.Mutex
	running bool
}

// StartCluster creates a cluster with initdb in a temporary directory,
// starts it with pg_ctl on a free port of 127.0.0.1 and returns it. As root
// the cluster runs as the postgres user. It fails the test if no cluster
// can be had.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	bindir, err := findBinDir()
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	dir, err := os.MkdirTemp("", "amspgc-")
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	c := &Cluster{bindir: bindir, dir: dir, data: filepath.Join(dir, "data")}
	tb.Cleanup(func() {
		c.stop("immediate")
		_ = os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			tb.Fatalf("pgtest: running as root and no postgres user to run a cluster")
		}
		if err := exec.Command("chown", "-R", "postgres", dir).Run(); err != nil {
			tb.Fatalf("pgtest: chown cluster dir: %v", err)
		}
		c.wrap = []string{"runuser", "-u", "postgres", "--"}
	}
	if c.port, err = freePort(); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	if err := c.run("initdb", "-D", c.data, "-U", "postgres", "-A", "trust", "--no-sync"); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	c.Start(tb)
	return c
}

func (c *Cluster) run(tool string, args ...string) error {
	full := append(append(append([]string{}, c.wrap...), filepath.Join(c.bindir, tool)), args...)
	out, err := exec.Command(full[0], full[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", tool, err, out)
	}
	return nil
}

// URL is the URL of the cluster's database db ("postgres" for the
// maintenance database).
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// Start starts the (stopped) cluster on its port and waits until it
// accepts connections.
func (c *Cluster) Start(tb testing.TB) {
	tb.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", c.port, c.dir)
	if err := c.run("pg_ctl", "-D", c.data, "-o", opts, "-l", filepath.Join(c.dir, "log"), "-w", "start"); err != nil {
		tb.Fatalf("pgtest: start cluster: %v", err)
	}
	c.running = true
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := ping(c.URL("postgres"))
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("pgtest: cluster not reachable: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// Stop stops the cluster at once ("fast": sessions are terminated, the
// port closes) and waits for it.
func (c *Cluster) Stop(tb testing.TB) {
	tb.Helper()
	if err := c.stop("fast"); err != nil {
		tb.Fatalf("pgtest: stop cluster: %v", err)
	}
}

func (c *Cluster) stop(mode string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		return nil
	}
	c.running = false
	return c.run("pg_ctl", "-D", c.data, "-m", mode, "-w", "stop")
}

// CreateDatabase creates an empty database db in the cluster and returns
// its URL.
func (c *Cluster) CreateDatabase(tb testing.TB, db string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		tb.Fatalf("pgtest: connect cluster: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		tb.Fatalf("pgtest: create database: %v", err)
	}
	return c.URL(db)
}
