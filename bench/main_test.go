package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestQuickReport runs the program in -quick mode against a freshly built
// dsync and checks that the report has every section and plausible figures.
func TestQuickReport(t *testing.T) {
	if testing.Short() {
		t.Skip("builds dsync and runs syncs")
	}
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build dsync")
	}
	dir := t.TempDir()
	dsync := filepath.Join(dir, "dsync")
	build := exec.Command(goTool, "build", "-o", dsync, "./cmd/dsync")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build dsync: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out := filepath.Join(dir, "RESULTS.md")
	var logs bytes.Buffer
	if err := run(ctx, invocation{prog: "go run ./bench"}, []string{"-quick", "-dsync", dsync, "-out", out}, &bytes.Buffer{}, &logs); err != nil {
		t.Fatalf("run: %v\n%s", err, logs.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	t.Logf("report:\n%s", md)

	for _, want := range []string{
		"# dsync benchmarks",
		"go run ./bench -quick -dsync " + dsync + " -out " + out,
		"## 1. ListData throughput of random://",
		"default page size: 1000 documents per page",
		"## 2. End-to-end `dsync sync` random:// → null://",
		dsync + " sync 'random://?namespaces=1&docs=20000&size=1024&partitions=8' null:// --mode initial --progress none --state-dir \"$(mktemp -d)\"",
		dsync + " sync 'random://?namespaces=1&docs=200000&size=1024&partitions=8' null://",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}

	machine := rows(t, md, "| Machine |")
	for _, key := range []string{"CPU", "Cores", "RAM", "Kernel", "Go", "dsync", "Load average (1 min)"} {
		if v := machine[key]; len(v) == 0 || v[0] == "" || v[0] == "unknown" {
			t.Errorf("machine %s = %q", key, v)
		}
	}
	if n, err := strconv.Atoi(machine["Cores"][0]); err != nil || n < 1 {
		t.Errorf("cores = %q", machine["Cores"])
	}

	list := rows(t, md, "| Path |")
	for _, path := range []string{"in-process", "gRPC (plugin subprocess, AutoMTLS)"} {
		r := list[path]
		if len(r) < 2 {
			t.Errorf("figure 1 has no %s row", path)
			continue
		}
		positive(t, path+" docs/s", r[0])
		positive(t, path+" MB/s", r[1])
	}
	positive(t, "gRPC/in-process ratio", find(t, md, `\*\*gRPC / in-process: ([0-9.]+)\*\*`)[0])

	runs := rows(t, md, "| Docs | Run |")
	for _, docs := range []string{"20000", "200000"} {
		r := runs[docs]
		if len(r) < 9 {
			t.Errorf("figure 2 has no run of %s docs", docs)
			continue
		}
		positive(t, docs+" docs/s", r[3])
		positive(t, docs+" MB/s", r[4])
		positive(t, docs+" coordinator peak RSS", strings.TrimSuffix(r[6], " MiB"))
		plugins := regexp.MustCompile(`^null ([0-9.]+) MiB, random ([0-9.]+) MiB$`).FindStringSubmatch(r[7])
		if plugins == nil {
			t.Errorf("%s docs: plugin peaks %q, want the null and random plugins", docs, r[7])
		} else {
			positive(t, docs+" null plugin peak RSS", plugins[1])
			positive(t, docs+" random plugin peak RSS", plugins[2])
		}
	}
	sizes := rows(t, md, "| Docs | docs/s (median) |")
	for _, docs := range []string{"20000", "200000"} {
		r := sizes[docs]
		if len(r) != 4 {
			t.Errorf("per-size table has no row of %s docs", docs)
			continue
		}
		for _, c := range r {
			positive(t, docs+" per-size figure", strings.TrimSuffix(c, " MiB"))
		}
	}
	find(t, md, `\*\*Coordinator peak RSS flat \(within 20%\) as the dataset grew 10×: (yes|NO)\*\* \(largest of the runs [0-9.]+ → [0-9.]+ MiB, [-+][0-9.]+%; medians [0-9.]+ → [0-9.]+ MiB, [-+][0-9.]+%\)`)
	checkNewSections(t, md)
	ceiling := find(t, md, `\*\*End-to-end docs/s over the in-process ListData ceiling of figure 1\*\* \(([0-9]+) docs/s, same run\): ([0-9.]+) at 20000 docs, ([0-9.]+) at 200000 docs\.`)
	for _, v := range ceiling {
		positive(t, "ceiling ratio", v)
	}
}

// checkNewSections checks figures 3 to 6. Figures 5 and 6 may say why
// they were not measured (no PostgreSQL here).
func checkNewSections(t *testing.T, md string) {
	t.Helper()
	for _, want := range []string{
		"## 3. Overhead of one no-op transform plugin (random:// → null://)",
		"--transform rename:nosuchfield=other",
		"## 4. `dsync verify` random:// against a testsink copy",
		"## 5. MongoDB → MongoDB copy: dsync vs a direct driver copy",
		"## 6. PostgreSQL → PostgreSQL: copy vs pg_dump | psql, and CDC",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	xf := find(t, md, `\*\*With one no-op transform / without: ([0-9.]+)\*\* \(median docs/s ([0-9]+) / ([0-9]+), 20000 documents, same run\)`)
	for _, v := range xf {
		positive(t, "transform figure", v)
	}
	if !regexp.MustCompile(`\| rename \(no-op\) \| 1 \|.*rename [0-9.]+ MiB \|`).MatchString(md) {
		t.Error("figure 3 has no run with the rename plugin's peak RSS")
	}
	verify := rows(t, md, "| Docs | Copy wall |")
	for _, docs := range []string{"2000", "20000"} {
		r := verify[docs]
		if len(r) != 10 {
			t.Errorf("figure 4 has no row of %s docs", docs)
			continue
		}
		for _, k := range []int{1, 4, 5} {
			positive(t, docs+" verify figure", r[k])
		}
		if !regexp.MustCompile(`^random [0-9.]+ MiB, testsink [0-9.]+ MiB$`).MatchString(r[7]) {
			t.Errorf("%s docs: verify plugin peaks %q, want random and testsink", docs, r[7])
		}
	}
	find(t, md, `\*\*Verify peak RSS flat \(within 20%\) as the dataset grew 10×: (yes|NO)\*\*`)
	find(t, md, `\*\*Verify docs/s over copy docs/s of the same data, same run:\*\* [0-9.]+ at 2000 docs, [0-9.]+ at 20000 docs\.`)
	if !strings.Contains(md, "## 5. MongoDB → MongoDB copy: dsync vs a direct driver copy\n\nNot measured") {
		m := find(t, md, `\*\*dsync / best direct copy \(direct, [14] cursor\(s\)\): ([0-9.]+)\*\* \(median docs/s ([0-9]+) / ([0-9]+), same run`)
		for _, v := range m {
			positive(t, "mongo figure", v)
		}
	}
	if !strings.Contains(md, "## 6. PostgreSQL → PostgreSQL: copy vs pg_dump | psql, and CDC\n\nNot measured") {
		m := find(t, md, `\*\*dsync / pg_dump \| psql: ([0-9.]+)\*\* \(median rows/s ([0-9]+) / ([0-9]+), same run\)`)
		for _, v := range m {
			positive(t, "postgres copy figure", v)
		}
		c := find(t, md, `\*\*CDC at a fixed 1000 changes/s: applied at ([0-9]+) changes/s, source-commit → sink-visible latency p50 ([0-9.]+m?s), p99 ([0-9.]+m?s); burst drained at ([0-9]+) changes/s\.\*\*`)
		positive(t, "CDC apply rate", c[0])
		positive(t, "CDC burst rate", c[3])
	}
}

// rows returns the rows of the Markdown table whose header line starts with
// header, keyed by their first cell.
func rows(t *testing.T, md, header string) map[string][]string {
	t.Helper()
	i := strings.Index(md, "\n"+header)
	if i < 0 {
		t.Fatalf("no table with header %q", header)
	}
	lines := strings.Split(md[i+1:], "\n")
	out := map[string][]string{}
	for _, l := range lines[2:] {
		if !strings.HasPrefix(l, "|") {
			break
		}
		cells := strings.Split(strings.Trim(l, "|"), "|")
		for k := range cells {
			cells[k] = strings.TrimSpace(cells[k])
		}
		out[cells[0]] = cells[1:]
	}
	return out
}

// find returns the submatches of re in md.
func find(t *testing.T, md, re string) []string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(md)
	if m == nil {
		t.Fatalf("report does not match %s", re)
	}
	return m[1:]
}

func positive(t *testing.T, what, s string) {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 {
		t.Errorf("%s = %q, want a positive number", what, s)
	}
}

func TestQuoteArgs(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"null://", "null://"},
		{"--mode", "--mode"},
		{"random://?docs=1&size=2", "'random://?docs=1&size=2'"},
		{"it's", `'it'\''s'`},
		{"", "''"},
	} {
		if got := quoteArgs([]string{tc.in})[0]; got != tc.want {
			t.Errorf("quoteArgs(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestReadStatus(t *testing.T) {
	path := filepath.Join(t.TempDir(), "status")
	const status = "Name:\tdsync\nVmPeak:\t  1000 kB\nVmHWM:\t    8 kB\nThreads:\t7\n"
	if err := os.WriteFile(path, []byte(status), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := readStatus(path)
	if err != nil {
		t.Fatal(err)
	}
	if st["VmHWM"] != 8<<10 || st["VmPeak"] != 1000<<10 || len(st) != 2 {
		t.Errorf("readStatus = %v", st)
	}
}
