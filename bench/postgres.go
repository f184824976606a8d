package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dsyncio/dsync/internal/testserver/pg"
)

const (
	pgDB = "benchdb"
	// pgCopyDDL is the table of the copy; created empty in B before each
	// copy.
	pgCopyDDL = `CREATE TABLE bench.t (id bigint PRIMARY KEY, name text NOT NULL, n integer, score double precision, created timestamptz, payload text)`
	// pgCDCDDL is the table the CDC writer changes; seq is the number of
	// the last change of the row.
	pgCDCDDL = `CREATE TABLE bench.c (id bigint PRIMARY KEY, seq bigint NOT NULL, v text)`
	// pgPollEvery is the poller's interval on B.
	pgPollEvery = 5 * time.Millisecond
	// pgCDCRate is the writer's fixed rate, changes/s.
	pgCDCRate = 1000
)

// pgCopyRun is one PostgreSQL → PostgreSQL copy.
type pgCopyRun struct {
	Method string // "dsync" or "pg_dump | psql"
	Wall   time.Duration
	Proc   procRun // dsync only
}

// pgFigure is figure 6.
type pgFigure struct {
	Rows     int64
	RowBytes int64 // average pg_column_size of a row of A
	Args     []string
	DumpCmd  string
	Copies   []pgCopyRun
	CDC      cdcResult
	Version  string
}

// cdcResult is the CDC part of figure 6.
type cdcResult struct {
	Args     []string
	Duration time.Duration // of the paced writer
	// Paced: changes written at pgCDCRate, one per transaction.
	Paced cdcPhase
	// Burst: changes committed as fast as possible in transactions of
	// BurstTx rows, drained by dsync.
	Burst   cdcPhase
	BurstTx int
	Proc    procRun
}

type cdcPhase struct {
	Changes  int
	Inserts  int
	Updates  int
	Written  time.Duration // first commit → last commit
	Drained  time.Duration // first commit → last change visible on B
	Latency  []time.Duration
	Negative int // changes seen on B before the writer's commit returned
}

func (c cdcPhase) WriteRate() float64 { return float64(c.Changes) / c.Written.Seconds() }
func (c cdcPhase) ApplyRate() float64 { return float64(c.Changes) / c.Drained.Seconds() }

// pct returns the p-th percentile (0..100) of the sorted latencies.
func (c cdcPhase) pct(p float64) time.Duration {
	if len(c.Latency) == 0 {
		return 0
	}
	i := int(float64(len(c.Latency)-1) * p / 100)
	return c.Latency[i]
}

func (f pgFigure) medianOf(method string) float64 {
	var v []float64
	for _, r := range f.Copies {
		if r.Method == method {
			v = append(v, float64(f.Rows)/r.Wall.Seconds())
		}
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// pgTool finds a PostgreSQL client program.
func pgTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(dirs) == 0 {
		return "", fmt.Errorf("%s not found on PATH or in /usr/lib/postgresql/*/bin", name)
	}
	slices.Sort(dirs)
	return dirs[len(dirs)-1], nil
}

func pgExec(ctx context.Context, url string, stmts ...string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

func pgCount(ctx context.Context, url, table string) (int64, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var n int64
	err = conn.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n)
	return n, err
}

// newPGCluster starts a throwaway cluster with database pgDB.
func newPGCluster() (*pg.Cluster, string, error) {
	c, err := pg.New()
	if err != nil {
		return nil, "", err
	}
	if err := pgExec(context.Background(), c.URL("postgres"), "CREATE DATABASE "+pgDB); err != nil {
		c.Close()
		return nil, "", err
	}
	return c, c.URL(pgDB), nil
}

// measurePostgres starts two clusters, compares the copy of one table by
// dsync and by pg_dump | psql, then measures CDC.
func measurePostgres(ctx context.Context, cfg config, logf func(string, ...any)) (pgFigure, error) {
	fig := pgFigure{Rows: cfg.pgRows}
	pgDump, err := pgTool("pg_dump")
	if err != nil {
		return fig, err
	}
	psql, err := pgTool("psql")
	if err != nil {
		return fig, err
	}
	ca, urlA, err := newPGCluster()
	if err != nil {
		return fig, fmt.Errorf("cluster A: %w", err)
	}
	defer ca.Close()
	cb, urlB, err := newPGCluster()
	if err != nil {
		return fig, fmt.Errorf("cluster B: %w", err)
	}
	defer cb.Close()

	start := time.Now()
	if err := pgExec(ctx, urlA, "CREATE SCHEMA bench", pgCopyDDL,
		fmt.Sprintf(`INSERT INTO bench.t SELECT g, 'user-' || lpad(g::text, 8, '0'), g %% 1000, g / 7.0,
			timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second', repeat(chr(97 + (g %% 26)::int), 900)
			FROM generate_series(1, %d) g`, fig.Rows),
		"VACUUM ANALYZE bench.t", pgCDCDDL); err != nil {
		return fig, fmt.Errorf("seed A: %w", err)
	}
	if err := pgExec(ctx, urlB, "CREATE SCHEMA bench", pgCDCDDL, "CREATE INDEX ON bench.c (seq)"); err != nil {
		return fig, err
	}
	conn, err := pgx.Connect(ctx, urlA)
	if err != nil {
		return fig, err
	}
	err = conn.QueryRow(ctx, "SELECT avg(pg_column_size(t.*))::bigint, current_setting('server_version') FROM bench.t t").Scan(&fig.RowBytes, &fig.Version)
	conn.Close(ctx)
	if err != nil {
		return fig, err
	}
	logf("  seeded A with %d rows in %.1fs", fig.Rows, time.Since(start).Seconds())

	fig.Args = []string{"sync", "postgres://A", "postgres://B", "--namespace", "bench.t", "--mode", "initial",
		"--progress", "none", "--state-dir", stateDirArg}
	fig.DumpCmd = fmt.Sprintf("%s --data-only -t bench.t -d URL_A | %s -q -v ON_ERROR_STOP=1 -d URL_B", pgDump, psql)
	for i := range cfg.pgRuns {
		for _, method := range []string{"dsync", "pg_dump | psql"} {
			if err := pgExec(ctx, urlB, "DROP TABLE IF EXISTS bench.t", pgCopyDDL); err != nil {
				return fig, err
			}
			r := pgCopyRun{Method: method}
			if method == "dsync" {
				args, cleanup, err := withStateDir(fig.Args)
				if err != nil {
					return fig, err
				}
				args[1], args[2] = urlA, urlB
				r.Proc, _, err = runProc(ctx, cfg.dsync, args, nil)
				cleanup()
				if err != nil {
					return fig, err
				}
				r.Wall = r.Proc.Wall
			} else {
				start := time.Now()
				if err := dumpRestore(ctx, pgDump, psql, urlA, urlB); err != nil {
					return fig, err
				}
				r.Wall = time.Since(start)
			}
			n, err := pgCount(ctx, urlB, "bench.t")
			if err != nil {
				return fig, err
			}
			if n != fig.Rows {
				return fig, fmt.Errorf("%s copied %d rows, want %d", method, n, fig.Rows)
			}
			logf("  run %d %-15s %.2fs, %.0f rows/s", i+1, method, r.Wall.Seconds(), float64(fig.Rows)/r.Wall.Seconds())
			fig.Copies = append(fig.Copies, r)
		}
	}

	fig.CDC, err = measureCDC(ctx, cfg, urlA, urlB, logf)
	if err != nil {
		return fig, fmt.Errorf("CDC: %w", err)
	}
	return fig, nil
}

// dumpRestore pipes pg_dump of A's bench.t (data only) into psql on B.
func dumpRestore(ctx context.Context, pgDump, psql, urlA, urlB string) error {
	dump := exec.CommandContext(ctx, pgDump, "--data-only", "-t", "bench.t", "-d", urlA)
	restore := exec.CommandContext(ctx, psql, "-q", "-v", "ON_ERROR_STOP=1", "-d", urlB)
	pipe, err := dump.StdoutPipe()
	if err != nil {
		return err
	}
	restore.Stdin = pipe
	var e1, e2 strings.Builder
	dump.Stderr, restore.Stderr = &e1, &e2
	restore.Stdout = io.Discard
	if err := dump.Start(); err != nil {
		return err
	}
	if err := restore.Start(); err != nil {
		_ = dump.Process.Kill()
		_ = dump.Wait()
		return err
	}
	errD, errR := dump.Wait(), restore.Wait()
	if errD != nil || errR != nil {
		return fmt.Errorf("pg_dump: %v %s; psql: %v %s", errD, e1.String(), errR, e2.String())
	}
	return nil
}

// tracker matches the changes the writer commits on A with their
// appearance on B.
type tracker struct {
	mu      sync.Mutex
	commit  map[int64]time.Time // seq → commit returned
	visible map[int64]time.Time // seq → seen on B
	pending map[int64][]int64   // row id → seqs not yet seen
	low     int64               // every seq ≤ low has been seen
}

func newTracker() *tracker {
	return &tracker{commit: map[int64]time.Time{}, visible: map[int64]time.Time{}, pending: map[int64][]int64{}}
}

// add registers seq as a change of row id, before it is written.
func (t *tracker) add(id, seq int64) {
	t.mu.Lock()
	t.pending[id] = append(t.pending[id], seq)
	t.mu.Unlock()
}

func (t *tracker) committed(seqs []int64, at time.Time) {
	t.mu.Lock()
	for _, s := range seqs {
		t.commit[s] = at
	}
	t.mu.Unlock()
}

// seen records that row id holds seq on B at time at: that change and the
// row's earlier ones (overwritten, hence applied) are visible.
func (t *tracker) seen(id, seq int64, at time.Time) {
	p := t.pending[id]
	k := 0
	for _, s := range p {
		if s <= seq {
			t.visible[s] = at
		} else {
			p[k] = s
			k++
		}
	}
	if k == 0 {
		delete(t.pending, id)
	} else {
		t.pending[id] = p[:k]
	}
	for {
		if _, ok := t.visible[t.low+1]; !ok {
			break
		}
		t.low++
	}
}

// poll reads B's rows changed since the low-water mark every pgPollEvery
// until ctx ends.
func (t *tracker) poll(ctx context.Context, urlB string) error {
	conn, err := pgx.Connect(ctx, urlB)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	tick := time.NewTicker(pgPollEvery)
	defer tick.Stop()
	for {
		t.mu.Lock()
		low := t.low
		t.mu.Unlock()
		rows, err := conn.Query(ctx, "SELECT id, seq FROM bench.c WHERE seq > $1", low)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		var pairs [][2]int64
		var id, seq int64
		_, err = pgx.ForEachRow(rows, []any{&id, &seq}, func() error {
			pairs = append(pairs, [2]int64{id, seq})
			return nil
		})
		at := time.Now()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		t.mu.Lock()
		for _, p := range pairs {
			t.seen(p[0], p[1], at)
		}
		t.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// waitAll waits until every seq up to last is visible.
func (t *tracker) waitAll(ctx context.Context, last int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		t.mu.Lock()
		low := t.low
		t.mu.Unlock()
		if low >= last {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("changes up to %d of %d visible on B after %v", low, last, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// phase summarises the changes from seq first to last.
func (t *tracker) phase(first, last int64) cdcPhase {
	t.mu.Lock()
	defer t.mu.Unlock()
	var ph cdcPhase
	var c0, c1, v1 time.Time
	for s := first; s <= last; s++ {
		c, v := t.commit[s], t.visible[s]
		if c0.IsZero() || c.Before(c0) {
			c0 = c
		}
		if c.After(c1) {
			c1 = c
		}
		if v.After(v1) {
			v1 = v
		}
		d := v.Sub(c)
		if d < 0 {
			ph.Negative++
		}
		ph.Latency = append(ph.Latency, d)
	}
	slices.Sort(ph.Latency)
	ph.Changes = int(last - first + 1)
	ph.Written, ph.Drained = c1.Sub(c0), v1.Sub(c0)
	return ph
}

// measureCDC runs `dsync sync A B --mode cdc` on bench.c while a writer
// changes A at pgCDCRate changes/s, then commits a burst.
func measureCDC(ctx context.Context, cfg config, urlA, urlB string, logf func(string, ...any)) (cdcResult, error) {
	res := cdcResult{Duration: cfg.cdcDuration, BurstTx: 1000,
		Args: []string{"sync", "postgres://A", "postgres://B", "--namespace", "bench.c", "--mode", "cdc", "--progress", "none", "--state-dir", stateDirArg}}
	args, cleanup, err := withStateDir(res.Args)
	if err != nil {
		return res, err
	}
	defer cleanup()
	args[1], args[2] = urlA, urlB
	pctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	proc, err := startProc(pctx, cfg.dsync, args, nil)
	if err != nil {
		return res, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = proc.signal(syscall.SIGKILL)
			_, _ = proc.wait()
		}
	}()

	w, err := pgx.Connect(ctx, urlA)
	if err != nil {
		return res, err
	}
	defer w.Close(context.Background())
	// The stream is live once the slot has a walsender.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var active bool
		if err := w.QueryRow(ctx, "SELECT coalesce(bool_or(active), false) FROM pg_replication_slots").Scan(&active); err != nil {
			return res, err
		}
		if active {
			break
		}
		if time.Now().After(deadline) || proc.cmd.ProcessState != nil {
			return res, fmt.Errorf("no active replication slot on A after 60s; dsync stderr:\n%s", tail(proc.stderr.String(), 20))
		}
		time.Sleep(20 * time.Millisecond)
	}

	tr := newTracker()
	pollCtx, stopPoll := context.WithCancel(ctx)
	pollErr := make(chan error, 1)
	go func() { pollErr <- tr.poll(pollCtx, urlB) }()
	defer stopPoll()

	// Paced phase: change i is due at start + i/pgCDCRate; each change is
	// one transaction: an insert of a new row or an update of a random
	// earlier one, alternating.
	rng := rand.New(rand.NewPCG(1, 2))
	total := int64(cfg.cdcDuration.Seconds() * pgCDCRate)
	var rowsN int64
	var ph cdcPhase
	start := time.Now()
	for seq := int64(1); seq <= total; seq++ {
		if d := time.Until(start.Add(time.Duration(seq-1) * time.Second / pgCDCRate)); d > 0 {
			time.Sleep(d)
		}
		var id int64
		var sql string
		if seq%2 == 1 || rowsN == 0 {
			rowsN++
			id, sql = rowsN, "INSERT INTO bench.c (id, seq, v) VALUES ($1, $2, $3)"
			ph.Inserts++
		} else {
			id, sql = 1+rng.Int64N(rowsN), "UPDATE bench.c SET seq = $2, v = $3 WHERE id = $1"
			ph.Updates++
		}
		tr.add(id, seq)
		if _, err := w.Exec(ctx, sql, id, seq, "v"+strconv.FormatInt(seq, 10)); err != nil {
			return res, fmt.Errorf("writer: %w", err)
		}
		tr.committed([]int64{seq}, time.Now())
	}
	if err := tr.waitAll(ctx, total, 60*time.Second); err != nil {
		return res, err
	}
	p := tr.phase(1, total)
	p.Inserts, p.Updates = ph.Inserts, ph.Updates
	res.Paced = p
	logf("  paced: %d changes written at %.0f/s, applied at %.0f/s, latency p50 %v p99 %v",
		p.Changes, p.WriteRate(), p.ApplyRate(), p.pct(50), p.pct(99))

	// Burst: cfg.cdcBurst new rows in transactions of BurstTx rows.
	first := total + 1
	last := total + cfg.cdcBurst
	for lo := first; lo <= last; lo += int64(res.BurstTx) {
		hi := min(lo+int64(res.BurstTx)-1, last)
		seqs := make([]int64, 0, hi-lo+1)
		for s := lo; s <= hi; s++ {
			tr.add(s, s) // id = seq: above every paced row's id
			seqs = append(seqs, s)
		}
		if _, err := w.Exec(ctx, "INSERT INTO bench.c (id, seq, v) SELECT g, g, 'v' || g FROM generate_series($1::bigint, $2::bigint) g", lo, hi); err != nil {
			return res, fmt.Errorf("burst writer: %w", err)
		}
		tr.committed(seqs, time.Now())
	}
	if err := tr.waitAll(ctx, last, 120*time.Second); err != nil {
		return res, err
	}
	b := tr.phase(first, last)
	b.Inserts = int(last - first + 1)
	res.Burst = b
	logf("  burst: %d changes written at %.0f/s, applied at %.0f/s", b.Changes, b.WriteRate(), b.ApplyRate())

	stopPoll()
	if err := <-pollErr; err != nil {
		return res, fmt.Errorf("poller: %w", err)
	}
	if err := proc.signal(syscall.SIGTERM); err != nil {
		return res, err
	}
	stopped = true
	res.Proc, err = proc.wait()
	if err != nil {
		return res, err
	}
	// Rows on B must equal A's.
	na, err := pgCount(ctx, urlA, "bench.c")
	if err != nil {
		return res, err
	}
	nb, err := pgCount(ctx, urlB, "bench.c")
	if err != nil {
		return res, err
	}
	if na != nb {
		return res, fmt.Errorf("bench.c has %d rows on A, %d on B", na, nb)
	}
	return res, nil
}

func (f pgFigure) write(w io.Writer, dsync string) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("## 6. PostgreSQL → PostgreSQL: copy vs pg_dump | psql, and CDC\n\n")
	p("Two throwaway PostgreSQL %s clusters on this machine (internal/testserver/pg: initdb, fsync=off, synchronous_commit=on, wal_level=logical; loopback TCP), database `%s` in each.\n\n", f.Version, pgDB)
	p("### Copy\n\n")
	p("A's `bench.t` (`%s`) holds %d rows (average row %d bytes by pg_column_size: a 900-character text, timestamps at whole seconds), inserted with generate_series and VACUUM ANALYZEd. Before each copy B's `bench.t` is dropped and created again, empty, with the same DDL (primary key included); after it, B's count must equal A's. The two methods alternate:\n\n", pgCopyDDL, f.Rows, f.RowBytes)
	p("- **dsync**: `%s` (A and B are `postgres://postgres@127.0.0.1:PORT/%s?sslmode=disable`), fresh state directory; wall time of the process.\n", cmdLine(dsync, f.Args), pgDB)
	p("- **pg_dump | psql**: `%s` (COPY into the existing table).\n\n", f.DumpCmd)
	p("| Method | Round | Wall time | rows/s | Coordinator peak RSS | Plugin peak RSS |\n|---|---:|---:|---:|---:|---|\n")
	round := map[string]int{}
	for _, r := range f.Copies {
		round[r.Method]++
		rss, pl := "", ""
		if r.Method == "dsync" {
			rss, pl = fmt.Sprintf("%.1f MiB", mib(r.Proc.Coordinator.HWM)), r.Proc.pluginPeaks()
		}
		p("| %s | %d | %s | %.0f | %s | %s |\n", strings.ReplaceAll(r.Method, "|", `\|`), round[r.Method], r.Wall.Round(time.Millisecond), float64(f.Rows)/r.Wall.Seconds(), rss, pl)
	}
	d, dump := f.medianOf("dsync"), f.medianOf("pg_dump | psql")
	p("\n**dsync / pg_dump | psql: %.2f** (median rows/s %.0f / %.0f, same run).\n\n", d/dump, d, dump)

	c := f.CDC
	p("### CDC\n\n")
	p("A and B hold `%s` (B also indexes seq); dsync streams its changes: `%s` (same URLs, fresh state directory). Once A's replication slot is active (the stream is live), a writer on one connection to A makes %d changes per second for %v, each change its own transaction: alternately an INSERT of a new row and an UPDATE of a random earlier row, each setting `seq` to the change's number (change i is due at start + i ms; a late change is made at once). ",
		pgCDCDDL, cmdLine(dsync, c.Args), pgCDCRate, c.Duration)
	p("The source-commit time of a change is when the writer's Exec returned (commit acknowledged, synchronous_commit on). A poller on B runs `SELECT id, seq FROM bench.c WHERE seq > LOW` every %v (LOW: every change up to it has been seen) and records when each seq first appears; a row found with a later seq also makes the row's earlier changes visible (they were applied and overwritten). Latency = visible − commit: it includes up to one poll interval plus the poll query, so it overstates the true latency by a few ms. ", pgPollEvery)
	p("Then a burst: %d new rows inserted as fast as possible in transactions of %d rows (INSERT ... SELECT generate_series); the apply rate of the burst is its changes over the time from its first commit to its last change visible on B, dsync's drain rate. dsync is then stopped with SIGTERM (exit 0 required) and B's row count must equal A's.\n\n", c.Burst.Changes, c.BurstTx)
	p("| Phase | Changes | Written at (changes/s) | Applied at (changes/s) | Latency p50 | p99 | max | Seen before commit returned |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, x := range []struct {
		name string
		ph   cdcPhase
	}{{fmt.Sprintf("paced %d/s (%d inserts, %d updates)", pgCDCRate, c.Paced.Inserts, c.Paced.Updates), c.Paced}, {fmt.Sprintf("burst (inserts, %d per transaction)", c.BurstTx), c.Burst}} {
		p("| %s | %d | %.0f | %.0f | %s | %s | %s | %d |\n", x.name, x.ph.Changes, x.ph.WriteRate(), x.ph.ApplyRate(),
			x.ph.pct(50).Round(100*time.Microsecond), x.ph.pct(99).Round(100*time.Microsecond), x.ph.pct(100).Round(100*time.Microsecond), x.ph.Negative)
	}
	p("\n**CDC at a fixed %d changes/s: applied at %.0f changes/s, source-commit → sink-visible latency p50 %s, p99 %s; burst drained at %.0f changes/s.** ",
		pgCDCRate, c.Paced.ApplyRate(), c.Paced.pct(50).Round(100*time.Microsecond), c.Paced.pct(99).Round(100*time.Microsecond), c.Burst.ApplyRate())
	p("dsync during CDC: coordinator peak RSS %.1f MiB, plugins %s, CPU %s over %s.\n\n", mib(c.Proc.Coordinator.HWM), c.Proc.pluginPeaks(), c.Proc.CPU.Round(10*time.Millisecond), c.Proc.Wall.Round(time.Millisecond))
}
