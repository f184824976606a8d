package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/connectors/builtin"
	"github.com/dsyncio/dsync/connectors/random"
	"github.com/dsyncio/dsync/tests/testsink"
)

// tfArgs returns --transform flags for specs.
func tfArgs(specs []string) []string {
	var out []string
	for _, s := range specs {
		out = append(out, "--transform", s)
	}
	return out
}

// tfExpected runs every document of s through the transform chain
// specs in process, with the code of the built-in transforms, as a copy of
// s would: namespaces in order, documents by _id.
func tfExpected(t testing.TB, specs []string, s random.State) random.State {
	t.Helper()
	ctx := context.Background()
	out := random.State{}
	for _, ns := range slices.Sorted(maps.Keys(s)) {
		ids := slices.Sorted(maps.Keys(s[ns]))
		docs := make([]bson.Raw, len(ids))
		for i, id := range ids {
			docs[i] = s[ns][id]
		}
		type batch struct {
			ns   string
			docs []bson.Raw
		}
		batches := []batch{{ns, docs}}
		for _, spec := range specs {
			name, arg, _ := strings.Cut(spec, ":")
			b, ok := builtin.LookupTransform(name)
			if !ok {
				t.Fatalf("no built-in transform %q", name)
			}
			tr := b.New()
			if err := tr.Configure(ctx, arg); err != nil {
				t.Fatalf("configure %s: %v", spec, err)
			}
			var next []batch
			for _, in := range batches {
				res, err := tr.TransformData(ctx, in.ns, in.docs)
				if err != nil {
					t.Fatalf("%s: %v", spec, err)
				}
				for _, r := range res {
					next = append(next, batch{r.Namespace, r.Docs})
				}
			}
			batches = next
		}
		for _, b := range batches {
			m := out[b.ns]
			if m == nil {
				m = map[int64]bson.Raw{}
				out[b.ns] = m
			}
			for _, d := range b.docs {
				m[d.Lookup("_id").Int64()] = d
			}
		}
	}
	return out
}

// tfWithoutField returns d without its top-level field name.
func tfWithoutField(t testing.TB, d bson.Raw, name string) bson.Raw {
	t.Helper()
	els, err := d.Elements()
	if err != nil {
		t.Fatal(err)
	}
	var out bson.D
	for _, e := range els {
		if e.Key() != name {
			out = append(out, bson.E{Key: e.Key(), Value: e.Value()})
		}
	}
	b, err := bson.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tfCheckSink checks that the store in dir holds exactly want, byte
// for byte, in want's namespaces only. The top-level datetime field nowField
// of every stored document must lie within [from, to] (a $now value); it is
// left out of the comparison.
func tfCheckSink(t testing.TB, dir string, want random.State, nowField string, from, to time.Time) {
	t.Helper()
	inspect(t, dir, func(s *testsink.Store) {
		got, err := s.Namespaces()
		if err != nil {
			t.Fatal(err)
		}
		if wantNS := slices.Sorted(maps.Keys(want)); !slices.Equal(got, wantNS) {
			t.Errorf("sink namespaces = %q, want %q", got, wantNS)
		}
		for _, ns := range slices.Sorted(maps.Keys(want)) {
			docs := want[ns]
			seen := map[int64]bool{}
			bad := 0
			report := func(format string, args ...any) {
				if bad++; bad <= errLimit {
					t.Errorf("%s: "+format, append([]any{ns}, args...)...)
				}
			}
			err := s.Each(ns, func(id bson.RawValue, doc bson.Raw) error {
				i, ok := id.Int64OK()
				if !ok {
					report("extra document with _id %s", testsink.IDString(id))
					return nil
				}
				seen[i] = true
				w, ok := docs[i]
				if !ok {
					report("extra document %d: %s", i, doc)
					return nil
				}
				if nowField != "" {
					at, ok := doc.Lookup(nowField).TimeOK()
					if !ok || at.Before(from.Truncate(time.Millisecond)) || at.After(to) {
						report("document %d: %s = %v, want a datetime of the run (%s to %s)", i, nowField, doc.Lookup(nowField), from, to)
					}
					doc, w = tfWithoutField(t, doc, nowField), tfWithoutField(t, w, nowField)
				}
				if !bytes.Equal(doc, w) {
					report("document %d differs:\n got %s\nwant %s", i, doc, w)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			missing := 0
			for _, i := range slices.Sorted(maps.Keys(docs)) {
				if !seen[i] {
					if missing++; missing <= errLimit {
						t.Errorf("%s: document %d missing", ns, i)
					}
				}
			}
			if bad+missing > 0 {
				t.Errorf("%s: %d documents missing, %d extra or different (of %d)", ns, missing, bad, len(docs))
			}
		}
	})
}

var tfDroppedRE = regexp.MustCompile(`, (\d+) docs dropped by transforms`)

// tfDropped returns the number of dropped documents of a summary line.
func tfDropped(stdout string) int {
	m := tfDroppedRE.FindStringSubmatch(stdout)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// A chain of transforms that rename, drop, mask and add fields and rename
// namespaces applies to the copy and to every kind of change event: after
// the cut-over the sink equals the source's final documents run through
// the same transform code in process.
func TestTransformChain(t *testing.T) {
	dir := t.TempDir()
	src := "random://?namespaces=2&docs=3000&partitions=4&size=300&updates=8000"
	chain := []string{
		"rename:tag=label,sub.a=sub.alpha",
		"drop:arr,sub.b",
		"mask:f=hash,s=redact;key=e2e-secret",
		`set:env="staging",origin=$namespace,synced=$now`,
		"namespace:random.ns0=staging.users,random=staging",
	}
	sink := sinkURL(dir+"/sink", "")
	args := append([]string{"sync", src, sink, "--mode", "full", "--until-lag", "2s", "--writers", "4",
		"--state-dir", dir + "/state", "--progress", "none", "--log-file", dir + "/log"}, tfArgs(chain)...)
	start := time.Now()
	r := mustRun(t, runTimeout, args...)
	end := time.Now()
	t.Logf("copied 6000 documents and applied 8000 change events through 5 transforms in %s", r.elapsed.Round(time.Millisecond))
	if !strings.Contains(r.stdout, " cut over in ") || tfDropped(r.stdout) != 0 {
		t.Errorf("summary does not report a cut-over without dropped documents:\n%s", r.stdout)
	}
	o := randomOptions(t, src)
	final, err := o.ExpectedState()
	if err != nil {
		t.Fatal(err)
	}
	want := tfExpected(t, chain, final)
	if len(want) != 2 || want["staging.users"] == nil || want["staging.ns1"] == nil {
		t.Fatalf("in-process chain produced namespaces %q", slices.Sorted(maps.Keys(want)))
	}
	tfCheckSink(t, dir+"/sink", want, "synced", start, end)
	f := readSinkFacts(t, dir+"/sink")
	if f.Counters.DocsWritten != 6000 || f.Counters.UpdatesApplied != 8000 {
		t.Errorf("sink counters = %+v: want 6000 documents and 8000 updates, each once", f.Counters)
	}

	// Checkpoints stay with the source partitions and the stream; the chain
	// is part of the flow's definition.
	fl := onlyFlow(t, dir+"/state")
	for _, p := range fl.Partitions {
		if !p.Done || !strings.HasPrefix(p.Namespace, "random.ns") || p.SinkNamespace != p.Namespace {
			t.Errorf("stored partition %+v: want a done partition of a source namespace", p)
		}
	}
	if fl.checkpointedDocs() != 6000 || len(fl.Updates) != 1 || fl.Updates[0].Events != 8000 {
		t.Errorf("stored flow: %s, streams %+v", describeState([]flowSnapshot{fl}), fl.Updates)
	}
	var opts struct {
		Transforms []string `json:"transforms"`
	}
	if err := json.Unmarshal(fl.Meta.Options, &opts); err != nil || !slices.Equal(opts.Transforms, chain) {
		t.Errorf("stored flow options %s: want the transform chain %q", fl.Meta.Options, chain)
	}

	// The same source and sink with another chain is another flow: it is
	// refused rather than resumed, naming the change.
	before := snapshotState(t, dir+"/state")
	args = append([]string{"sync", src, sink, "--mode", "full", "--until-lag", "2s",
		"--state-dir", dir + "/state", "--progress", "none", "--log-file", dir + "/log"}, tfArgs(chain[1:])...)
	r = run(t, runTimeout, args...)
	if line := oneErrorLine(t, r); r.code != 1 || !strings.Contains(line, "transforms changed from") {
		t.Errorf("rerun with another chain: exit %d, %q; want exit 1 naming the transform change", r.code, line)
	}
	sameState(t, before, snapshotState(t, dir+"/state"))
}

// filter drops the copied documents that do not match and dsync reports how
// many; on _id the change events are decided too, so the sink ends with
// exactly the matching documents.
func TestTransformFilter(t *testing.T) {
	t.Run("copy", func(t *testing.T) {
		dir := t.TempDir()
		src := "random://?namespaces=2&docs=5000&partitions=4&size=300"
		chain := []string{`filter:{"f":{"$gte":250},"tag":{"$in":["t1","t3","t5","t7","t9"]}}`}
		r := mustRun(t, runTimeout, append([]string{"sync", src, sinkURL(dir+"/sink", ""), "--mode", "initial",
			"--state-dir", dir + "/state", "--progress", "none", "--log-file", dir + "/log"}, tfArgs(chain)...)...)
		o := randomOptions(t, src)
		want := tfExpected(t, chain, o.InitialState())
		kept := len(want["random.ns0"]) + len(want["random.ns1"])
		if kept == 0 || kept > 5000 {
			t.Fatalf("the filter keeps %d of 10000 documents; choose another", kept)
		}
		if n := tfDropped(r.stdout); n != 10000-kept || !strings.Contains(r.stdout, fmt.Sprintf(": %d docs (", kept)) {
			t.Errorf("summary %q: want %d docs copied and %d dropped", strings.TrimSpace(r.stdout), kept, 10000-kept)
		}
		tfCheckSink(t, dir+"/sink", want, "", time.Time{}, time.Time{})
		if fl := onlyFlow(t, dir+"/state"); fl.checkpointedDocs() != uint64(kept) || fl.partitionsDone() != 8 {
			t.Errorf("stored flow: %s", describeState([]flowSnapshot{fl}))
		}
	})
	t.Run("copy and changes on _id", func(t *testing.T) {
		dir := t.TempDir()
		src := "random://?namespaces=2&docs=3000&partitions=4&size=300&updates=6000"
		chain := []string{`filter:{"$or":[{"_id":{"$lt":1000}},{"_id":{"$gte":3000}}]}`}
		r := mustRun(t, runTimeout, append([]string{"sync", src, sinkURL(dir+"/sink", ""), "--mode", "full", "--until-lag", "2s",
			"--state-dir", dir + "/state", "--progress", "none", "--log-file", dir + "/log"}, tfArgs(chain)...)...)
		if n := tfDropped(r.stdout); n != 4000 {
			t.Errorf("summary %q: want 4000 docs dropped", strings.TrimSpace(r.stdout))
		}
		o := randomOptions(t, src)
		final, err := o.ExpectedState()
		if err != nil {
			t.Fatal(err)
		}
		tfCheckSink(t, dir+"/sink", tfExpected(t, chain, final), "", time.Time{}, time.Time{})
	})
	// A query on other fields cannot decide partial updates, which random://
	// sends: the run stops with a message saying so rather than let a
	// filtered-out document appear in the sink as a fragment.
	t.Run("partial updates undecidable", func(t *testing.T) {
		dir := t.TempDir()
		src := "random://?docs=500&size=300&updates=500"
		r := run(t, runTimeout, "sync", src, sinkURL(dir+"/sink", ""), "--mode", "full", "--until-lag", "2s",
			"--state-dir", dir+"/state", "--progress", "none", "--log-file", dir+"/log", "--transform", `filter:{"ok":true}`)
		line := oneErrorLine(t, r)
		if r.code != 1 || !strings.Contains(line, "filter: namespace \"random.ns0\", _id ") ||
			!strings.Contains(line, "cannot decide a partial update without the full document") {
			t.Errorf("exit %d, %q: want exit 1 naming the document and the reason", r.code, line)
		}
	})
}

// A bad spec is a usage error: exit 2, one line, and no flow is created.
func TestTransformBadSpec(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ spec, want string }{
		{"rename:_id=x", `rename: entry "_id=x": _id cannot be renamed`},
		{"drop:a,a.b", `drop: "a.b" overlaps "a"`},
		{`filter:{"a":{"$regex":"^x"}}`, `filter: field "a": unsupported operator "$regex"`},
		{"mask:email=md5", `mask: entry "email=md5": unknown method "md5": use hash, redact or null`},
		{"set:env=staging", `set: value of "env": not a JSON value (strings need double quotes, e.g. env="staging")`},
		{"namespace:a.b=c", `namespace: entry "a.b=c" maps a namespace to a database or the reverse`},
		{"nosuch:x", `unknown transform "nosuch"`},
	}
	for _, c := range cases {
		r := run(t, runTimeout, "sync", "random://?docs=10", sinkURL(dir+"/sink", ""), "--mode", "initial",
			"--state-dir", dir+"/state", "--progress", "none", "--log-file", dir+"/log", "--transform", "rename:a=b", "--transform", c.spec)
		line := oneErrorLine(t, r)
		if r.code != 2 || !strings.Contains(line, c.want) {
			t.Errorf("--transform %s: exit %d, %q; want exit 2 with %q", c.spec, r.code, line, c.want)
		}
	}
	if fs := snapshotState(t, dir+"/state"); len(fs) != 0 {
		t.Errorf("bad specs created flows: %s", describeState(fs))
	}
}

// Fields added by set and a namespace renamed by a transform are accounted
// for by verify: with the same namespace mapping and --exclude-field for
// the added fields, the source and the sink are identical.
func TestTransformVerify(t *testing.T) {
	dir := t.TempDir()
	src := "random://?namespaces=2&docs=2000&partitions=2&size=300"
	sink := sinkURL(dir+"/sink", "")
	chain := []string{`set:env="staging",origin=$namespace,synced=$now`, "namespace:random=staging"}
	mustRun(t, runTimeout, append([]string{"sync", src, sink, "--mode", "initial",
		"--state-dir", dir + "/state", "--progress", "none", "--log-file", dir + "/log"}, tfArgs(chain)...)...)
	verify := func(extra ...string) result {
		return run(t, runTimeout, append([]string{"verify", src, sink, "--namespace", "random.ns0:staging.ns0", "--namespace", "random.ns1:staging.ns1",
			"--state-dir", dir + "/verify", "--progress", "none", "--log-file", dir + "/log"}, extra...)...)
	}
	if r := verify("--exclude-field", "env", "--exclude-field", "origin", "--exclude-field", "synced"); r.code != 0 {
		t.Errorf("verify with the added fields excluded: %s", r)
	}
	if r := verify("--exclude-field", "env", "--exclude-field", "origin"); r.code != 1 {
		t.Errorf("verify without excluding synced: exit %d, want 1 (differences)\n%s", r.code, r)
	}
}
