package tests

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/connectors/builtin"
	"github.com/dsyncio/dsync/connectors/random"
	"github.com/dsyncio/dsync/internal/wire"
	"github.com/dsyncio/dsync/sdk"
)

// The examples of third-party plugins (examples/) run through the real
// binary: the Python connector and the Node transform speak the raw
// go-plugin handshake with mutual TLS, and DATA_TYPE_JSON only, so these
// runs also prove the host's conversion between BSON and JSON. A missing
// language runtime skips its tests, except under CI=true, where .ci/run
// installs them and a skip would hide a failure.

// examplesDir is the absolute path of examples/.
func examplesDir(t testing.TB) string {
	t.Helper()
	d, err := filepath.Abs(filepath.Join("..", "examples"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// missingRuntime skips the test, or fails it under CI=true.
func missingRuntime(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format+" (CI=true: .ci/run must install it)", args...)
	}
	t.Skipf(format, args...)
}

// pythonConnector returns the jsondir connector's plugin directory, after
// checking that Debian's python3 has the packages it needs.
func pythonConnector(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("/usr/bin/python3", "-c", "import grpc, google.protobuf, cryptography").CombinedOutput()
	if err != nil {
		missingRuntime(t, "the Python example needs /usr/bin/python3 with python3-grpcio, python3-protobuf and python3-cryptography: %v: %s", err, bytes.TrimSpace(out))
	}
	return filepath.Join(examplesDir(t), "python-connector")
}

var nodeTransform struct {
	once sync.Once
	dir  string
	err  error
	skip string
}

// nodeTransformDir returns a copy of examples/node-transform with its
// dependencies installed by `npm ci`, made once for the whole run (the
// example directory itself is left alone).
func nodeTransformDir(t testing.TB) string {
	t.Helper()
	nodeTransform.once.Do(func() {
		for _, tool := range []string{"node", "npm"} {
			if _, err := exec.LookPath(tool); err != nil {
				nodeTransform.skip = "the Node example needs node and npm on PATH"
				return
			}
		}
		// Under the e2e root, which TestMain removes at the end.
		dir := filepath.Join(filepath.Dir(env.bin), "node-transform")
		if err := copyTree(filepath.Join(examplesDir(t), "node-transform"), dir); err != nil {
			nodeTransform.err = err
			return
		}
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			nodeTransform.err = fmt.Errorf("npm ci in %s: %v\n%s", dir, err, out)
			return
		}
		nodeTransform.dir = dir
	})
	switch {
	case nodeTransform.skip != "":
		missingRuntime(t, "%s", nodeTransform.skip)
	case nodeTransform.err != nil:
		t.Fatalf("install the Node example: %v", nodeTransform.err)
	}
	return nodeTransform.dir
}

// copyTree copies the regular files of src to dst, leaving out node_modules.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			if d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		info, err := d.Info()
		if err != nil || !info.Mode().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, info.Mode().Perm())
	})
}

var goConnector struct {
	once sync.Once
	dir  string
	err  error
	out  []byte
}

// goConnectorDir builds examples/go-connector, a module of its own, as
// dsync-connector-docdir into a directory of its own, once.
func goConnectorDir(t testing.TB) string {
	t.Helper()
	goConnector.once.Do(func() {
		dir := filepath.Join(filepath.Dir(env.bin), "go-connector")
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "dsync-connector-docdir"), ".")
		cmd.Dir = filepath.Join(examplesDir(t), "go-connector")
		cmd.Env = append(os.Environ(), "GOWORK=off")
		goConnector.out, goConnector.err = cmd.CombinedOutput()
		goConnector.dir = dir
	})
	if goConnector.err != nil {
		t.Fatalf("build examples/go-connector: %v\n%s", goConnector.err, goConnector.out)
	}
	return goConnector.dir
}

// jsonLines reads a JSON-lines file of the jsondir connector as BSON
// documents, the way dsync converts DATA_TYPE_JSON.
func jsonLines(t testing.TB, path string) []bson.Raw {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var docs []bson.Raw
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 32<<20)
	for n := 1; sc.Scan(); n++ {
		doc, err := wire.DecodeDoc(sc.Bytes(), sdk.DataTypeJSON)
		if err != nil {
			t.Fatalf("%s line %d: %v", path, n, err)
		}
		docs = append(docs, doc)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return docs
}

// writeJSONDir writes o's documents as a jsondir dataset in dir.
func writeJSONDir(t testing.TB, dir string, o random.Options) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for ns := range o.Namespaces {
		var b bytes.Buffer
		for i := range o.Docs {
			line, err := wire.EncodeDoc(o.Doc(ns, i), sdk.DataTypeJSON)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(line)
			b.WriteByte('\n')
		}
		if err := os.WriteFile(filepath.Join(dir, o.NamespaceName(ns)+".jsonl"), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// The Python connector is a sink and a source: random:// copied into it
// lands as Extended JSON that converts back to the exact source bytes, and
// copied out of it into testsink, the documents are exact again.
func TestExamplePythonConnector(t *testing.T) {
	plugins := pythonConnector(t)
	dir := t.TempDir()
	src := "random://?namespaces=2&docs=1500&partitions=3"
	o := randomOptions(t, src)
	jsonDir := "jsondir://" + filepath.ToSlash(dir) + "/json"
	common := []string{"--mode", "initial", "--plugin-dir", plugins, "--progress", "none", "--log-file", dir + "/log"}

	mustRun(t, runTimeout, append([]string{"sync", src, jsonDir, "--state-dir", dir + "/state1"}, common...)...)
	for ns := range o.Namespaces {
		name := o.NamespaceName(ns)
		docs := jsonLines(t, filepath.Join(dir, "json", name+".jsonl"))
		seen := make([]bool, o.Docs)
		bad := 0
		for _, d := range docs {
			i, ok := d.Lookup("_id").Int64OK()
			switch {
			case !ok || i < 0 || i >= o.Docs:
				t.Errorf("%s: unexpected document %s", name, d)
				bad++
			case seen[i]:
				t.Errorf("%s: document %d stored twice", name, i)
				bad++
			case !bytes.Equal(d, o.Doc(ns, i)):
				if bad++; bad <= errLimit {
					t.Errorf("%s: document %d differs after a round trip through Extended JSON:\n got %s\nwant %s", name, i, d, o.Doc(ns, i))
				}
			}
			if ok && i >= 0 && i < o.Docs {
				seen[i] = true
			}
		}
		if len(docs) != int(o.Docs) || bad > 0 {
			t.Errorf("%s: %d lines, %d bad; want %d documents", name, len(docs), bad, o.Docs)
		}
	}

	mustRun(t, runTimeout, append([]string{"sync", jsonDir, sinkURL(dir+"/sink", ""), "--state-dir", dir + "/state2"}, common...)...)
	checkCopy(t, dir+"/sink", o, nil, true)

	// As a sink of change data capture: inserts, replaces, partial updates
	// (dotted paths, removed fields) and deletes, converted to JSON.
	src = "random://?namespaces=2&docs=1000&partitions=2&updates=2000"
	r := mustRun(t, runTimeout, "sync", src, "jsondir://"+filepath.ToSlash(dir)+"/cdc", "--mode", "full", "--until-lag", "2s",
		"--writers", "4", "--plugin-dir", plugins, "--state-dir", dir+"/state3", "--progress", "none", "--log-file", dir+"/log")
	if c := finalCursor(r.stdout); c == "" || cursorPos(t, c) != 2000 {
		t.Fatalf("the run did not apply all 2000 change events (final cursor %q):\n%s", c, r)
	}
	want, err := randomOptions(t, src).ExpectedState()
	if err != nil {
		t.Fatal(err)
	}
	for ns, docs := range want {
		got := map[int64]bson.Raw{}
		if path := filepath.Join(dir, "cdc", ns+".jsonl"); len(docs) > 0 {
			for _, d := range jsonLines(t, path) {
				i, _ := d.Lookup("_id").Int64OK()
				if _, dup := got[i]; dup {
					t.Errorf("%s: _id %d stored twice", ns, i)
				}
				got[i] = d
			}
		}
		bad := 0
		for i, w := range docs {
			if g := got[i]; !bytes.Equal(g, w) {
				if bad++; bad <= errLimit {
					t.Errorf("%s: document %d after CDC:\n got %s\nwant %s", ns, i, g, w)
				}
			}
			delete(got, i)
		}
		for i := range got {
			t.Errorf("%s: document %d should have been deleted", ns, i)
		}
	}
}

// finalCursor returns the final cursor of update stream 0 that dsync prints
// after a cut-over, or "".
func finalCursor(stdout string) string {
	var cursor string
	for line := range strings.Lines(stdout) {
		if c, ok := strings.CutPrefix(strings.TrimSpace(line), "final cursor of stream 0: "); ok {
			cursor = c
		}
	}
	return cursor
}

// upperTag is what the Node example's `upper:tag` makes of a document: the
// string field tag upper-cased in place, every other byte unchanged.
func upperTag(t testing.TB, doc bson.Raw) bson.Raw {
	t.Helper()
	elems, err := doc.Elements()
	if err != nil {
		t.Fatal(err)
	}
	d := make(bson.D, len(elems))
	for i, e := range elems {
		d[i] = bson.E{Key: e.Key(), Value: e.Value()}
		if s, ok := e.Value().StringValueOK(); ok && e.Key() == "tag" {
			d[i].Value = strings.ToUpper(s)
		}
	}
	out, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The Node transform runs in the chain for the copy and for change data
// capture: after the cut-over the sink holds exactly the source's final
// state with every tag upper-cased.
func TestExampleNodeTransform(t *testing.T) {
	plugins := nodeTransformDir(t)
	dir := t.TempDir()
	src := "random://?namespaces=2&docs=2000&partitions=2&updates=3000"
	r := mustRun(t, runTimeout, "sync", src, sinkURL(dir+"/sink", ""), "--transform", "upper:tag",
		"--mode", "full", "--until-lag", "2s", "--writers", "4", "--plugin-dir", plugins,
		"--state-dir", dir+"/state", "--progress", "none", "--log-file", dir+"/log")
	if cursor := finalCursor(r.stdout); cursor == "" || cursorPos(t, cursor) != 3000 {
		t.Fatalf("the run did not apply all 3000 change events (final cursor %q):\n%s", finalCursor(r.stdout), r)
	}
	o := randomOptions(t, src)
	want, err := o.ExpectedState()
	if err != nil {
		t.Fatal(err)
	}
	for _, docs := range want {
		for id, d := range docs {
			docs[id] = upperTag(t, d)
		}
	}
	checkState(t, dir+"/sink", want)
}

// The Go example, a module of its own on package sdk only, is a source and
// a sink through real runs, and passes the conformance suite.
func TestExampleGoConnector(t *testing.T) {
	plugins := goConnectorDir(t)
	dir := t.TempDir()
	src := "random://?namespaces=2&docs=400&partitions=2"
	o := randomOptions(t, src)
	docDir := "docdir://" + filepath.ToSlash(dir) + "/docs"
	common := []string{"--mode", "initial", "--plugin-dir", plugins, "--progress", "none", "--log-file", dir + "/log"}
	mustRun(t, runTimeout, append([]string{"sync", src, docDir, "--state-dir", dir + "/state1"}, common...)...)
	mustRun(t, runTimeout, append([]string{"sync", docDir, sinkURL(dir+"/sink", ""), "--state-dir", dir + "/state2"}, common...)...)
	checkCopy(t, dir+"/sink", o, nil, true)

	r := run(t, runTimeout, "conformance", "--plugin", filepath.Join(plugins, "dsync-connector-docdir"), "--read-back",
		"--expect-get-by-ids", "--expect-count", "random.ns0=400", docDir+"?page=150")
	conformancePassed(t, r, 14)
}

// caseRow matches a row of the conformance table.
var caseRow = regexp.MustCompile(`(?m)^(PASS|FAIL|SKIP)\s+(\S+)\s`)

// conformanceRows returns the case rows of `dsync conformance` output by
// status.
func conformanceRows(stdout string) map[string][]string {
	rows := map[string][]string{}
	for _, m := range caseRow.FindAllStringSubmatch(stdout, -1) {
		rows[m[1]] = append(rows[m[1]], m[2])
	}
	return rows
}

// conformancePassed checks that a conformance run exited 0 with at least
// minPass passing cases and no failure.
func conformancePassed(t testing.TB, r result, minPass int) {
	t.Helper()
	rows := conformanceRows(r.stdout)
	if r.code != 0 || len(rows["FAIL"]) > 0 || len(rows["PASS"]) < minPass || r.stderr != "" {
		t.Fatalf("dsync conformance: want exit 0, at least %d passing cases and none failing:\n%s", minPass, r)
	}
	t.Logf("%d passed, skipped %q", len(rows["PASS"]), rows["SKIP"])
}

// dsync conformance passes on the examples and the built-ins, and fails
// with the reason on a sink that appends instead of replacing.
func TestConformanceCommand(t *testing.T) {
	t.Run("python-connector", func(t *testing.T) {
		plugins := pythonConnector(t)
		dir := t.TempDir()
		o := randomOptions(t, "random://?namespaces=2&docs=600")
		writeJSONDir(t, dir+"/data", o)
		r := run(t, runTimeout, "conformance", "--plugin", filepath.Join(plugins, "dsync-connector-jsondir"),
			"--read-back", "--expect-get-by-ids", "--expect-count", "random.ns0=600", "--expect-count", "random.ns1=600",
			"jsondir://"+filepath.ToSlash(dir)+"/data?page=250")
		conformancePassed(t, r, 14)
	})

	t.Run("python-connector-not-idempotent", func(t *testing.T) {
		plugins := pythonConnector(t)
		dir := t.TempDir()
		broken := writeScript(t, dir+"/dsync-connector-jsondir", "JSONDIR_FAULT=duplicate-writes exec "+
			filepath.Join(plugins, "dsync-connector-jsondir")+` "$@"`+"\n", 0o755)
		r := run(t, runTimeout, "conformance", "--plugin", broken, "--sink", "--read-back", "jsondir://"+filepath.ToSlash(dir)+"/data")
		rows := conformanceRows(r.stdout)
		if r.code != 1 || strings.Join(rows["FAIL"], " ") != "sink/write_data_idempotent" {
			t.Fatalf("want exit 1 and exactly sink/write_data_idempotent failing:\n%s", r)
		}
		for _, want := range []string{"lists 10 of its 11 ids more than once", "must insert or replace by id, not append"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("the failure does not say %q:\n%s", want, r.stdout)
			}
		}
		if line := oneErrorLine(t, r); !strings.Contains(line, "fails 1 case of the conformance suite") {
			t.Errorf("stderr: %q", line)
		}
	})

	t.Run("node-transform", func(t *testing.T) {
		plugins := nodeTransformDir(t)
		r := run(t, runTimeout, "conformance", "--plugin", filepath.Join(plugins, "dsync-transform-upper"),
			"--bad-spec", "", "--bad-spec", "_id", "--bad-spec", "a..b", "name")
		conformancePassed(t, r, 6)
		if !strings.Contains(r.stdout, "conformance of transform plugin") {
			t.Errorf("the plugin is not reported as a transform:\n%s", r.stdout)
		}
	})

	t.Run("builtin-random", func(t *testing.T) {
		r := run(t, runTimeout, "conformance", "--source", "--expect-updates", "--expect-get-by-ids", "random://?docs=800&page=300&updates=200")
		conformancePassed(t, r, 12)
	})

	t.Run("builtin-null", func(t *testing.T) {
		r := run(t, runTimeout, "conformance", "--sink", "null://")
		conformancePassed(t, r, 8)
	})

	t.Run("builtin-transforms", func(t *testing.T) {
		specs := map[string]string{
			"drop": "drop:name", "keep": "keep:name", "rename": "rename:name=fullName", "mask": "mask:name=redact",
			"set": `set:env="staging"`, "namespace": "namespace:sdktest.transform=staging.t", "filter": `filter:{"v":1}`,
		}
		n := 0
		for _, name := range builtin.TransformNames() {
			spec, ok := specs[name]
			if !ok {
				t.Logf("built-in transform %q has no spec here: not checked", name)
				continue
			}
			n++
			r := run(t, runTimeout, "conformance", "--transform", spec)
			conformancePassed(t, r, 5)
		}
		if n == 0 {
			t.Skip("no built-in transform to check")
		}
	})

	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"conformance"},
			{"conformance", "nosuchscheme://x"},
			{"conformance", "--source", "--transform", "upper:x"},
			{"conformance", "random://", "--skip", "no/such_case"},
		} {
			r := run(t, badRunTimeout, args...)
			if r.code != 2 {
				t.Errorf("dsync %q: want exit 2 (usage):\n%s", args, r)
			}
			oneErrorLine(t, r)
		}
	})
}

// The copies of protocol files the examples carry are current, and the
// committed Python stubs are what the Makefile generates.
func TestExamplesProtoCurrent(t *testing.T) {
	ex := examplesDir(t)
	root := filepath.Dir(ex)
	same := func(a, b string) {
		t.Helper()
		x, err := os.ReadFile(a)
		if err != nil {
			t.Fatal(err)
		}
		y, err := os.ReadFile(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x, y) {
			rel, _ := filepath.Rel(root, b)
			t.Errorf("%s differs from %s: copy it again (make -C examples/node-transform proto)", rel, a)
		}
	}
	same(filepath.Join(root, "proto/dsync/v1/dsync.proto"), filepath.Join(ex, "node-transform/proto/dsync/v1/dsync.proto"))
	for _, f := range []string{"health.proto", "grpc_controller.proto"} {
		same(filepath.Join(ex, "python-connector/protos", f), filepath.Join(ex, "node-transform/proto", f))
	}

	for _, tool := range []string{"protoc", "grpc_python_plugin"} {
		if _, err := exec.LookPath(tool); err != nil {
			missingRuntime(t, "checking the Python stubs needs %s (apt-get install -y protobuf-compiler-grpc)", tool)
		}
	}
	out := t.TempDir()
	cmd := exec.Command("make", "-s", "gen", "-C", filepath.Join(ex, "python-connector"), "GEN="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make gen: %v\n%s", err, b)
	}
	committed := filepath.Join(ex, "python-connector", "gen")
	n := 0
	err := filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(out, p)
		same(p, filepath.Join(committed, rel))
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("make gen generated nothing in %s", out)
	}
}
