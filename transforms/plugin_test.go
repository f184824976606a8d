package transforms_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/connectors/builtin"
	"github.com/dsyncio/dsync/connectors/random"
	"github.com/dsyncio/dsync/coordinator/pluginhost"
	"github.com/dsyncio/dsync/sdk"
)

var dsyncBin string

// TestMain builds cmd/dsync: built-in transforms are tested as dsync runs
// them, through `dsync plugin serve transform <name>` in a subprocess.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dsync-transforms-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dsyncBin = filepath.Join(dir, "dsync")
	if out, err := exec.Command("go", "build", "-o", dsyncBin, "github.com/dsyncio/dsync/cmd/dsync").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// specs are the specs each built-in runs through the plugin boundary; with
// updates false only documents go through (a field filter cannot decide
// the partial updates of random://).
var specs = map[string][]struct {
	spec    string
	updates bool
}{
	"rename":    {{"tag=label,sub.a=sub.alpha,meta.seq=top.seq", true}},
	"drop":      {{"arr,sub.b,s", true}},
	"keep":      {{"v,f,sub.a,meta,tag", true}},
	"filter":    {{`{"$or":[{"_id":{"$lt":100}},{"_id":{"$gte":400}}]}`, true}, {`{"tag":{"$in":["t1","t2","t3"]},"f":{"$gte":200}}`, false}},
	"mask":      {{"f=hash,tag=redact,sub=hash,meta.seq=null;key=k3y", true}},
	"set":       {{`env="staging",origin=$namespace,copy=$id,meta.flag=true,o={"a":[1,{"$date":"2024-01-01T00:00:00Z"}]}`, true}},
	"namespace": {{"random.ns0=staging.users,random=staging", true}},
}

func newHost(t *testing.T) *pluginhost.Host {
	t.Helper()
	h, err := pluginhost.New(pluginhost.Options{
		Self:     dsyncBin,
		Builtins: pluginhost.Builtins{Transforms: builtin.TransformNames()},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestPluginBoundary runs every built-in transform as a plugin subprocess
// and checks that it returns exactly what the in-process transform returns,
// for copy pages of every namespace and for change events of every type.
func TestPluginBoundary(t *testing.T) {
	o := random.DefaultOptions()
	o.Namespaces, o.Docs, o.Size, o.Updates = 2, 500, 300, 2000
	h := newHost(t)
	for _, name := range builtin.TransformNames() {
		cases, ok := specs[name]
		if !ok {
			t.Errorf("built-in transform %q has no spec in this test", name)
			continue
		}
		b, _ := builtin.LookupTransform(name)
		for _, c := range cases {
			t.Run(name+":"+c.spec, func(t *testing.T) {
				ctx := context.Background()
				p, err := h.Start(ctx, pluginhost.Spec{Role: pluginhost.RoleTransform, Arg: name + ":" + c.spec})
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				remote, local := p.Transform(), b.New()
				if err := local.Configure(ctx, c.spec); err != nil {
					t.Fatal(err)
				}
				for ns := range o.Namespaces {
					var docs []bson.Raw
					for i := range o.Docs {
						docs = append(docs, o.Doc(ns, i))
					}
					got, gerr := remote.TransformData(ctx, o.NamespaceName(ns), docs)
					want, werr := local.TransformData(ctx, o.NamespaceName(ns), docs)
					if gerr != nil || werr != nil {
						t.Fatalf("TransformData: plugin %v, in process %v", gerr, werr)
					}
					if g, w := dataString(got), dataString(want); g != w {
						t.Errorf("TransformData(%s) through the plugin differs:\n got %.500s\nwant %.500s", o.NamespaceName(ns), g, w)
					}
				}
				if !c.updates {
					return
				}
				var batch []sdk.Update
				ns := ""
				flush := func() {
					got, gerr := remote.TransformUpdates(ctx, ns, batch)
					want, werr := local.TransformUpdates(ctx, ns, batch)
					if gerr != nil || werr != nil {
						t.Fatalf("TransformUpdates: plugin %v, in process %v", gerr, werr)
					}
					if g, w := updatesString(got), updatesString(want); g != w {
						t.Errorf("TransformUpdates(%s) through the plugin differs:\n got %.500s\nwant %.500s", ns, g, w)
					}
					batch = batch[:0]
				}
				types := map[sdk.UpdateType]int{}
				for e := range o.Events(0) {
					if e.Namespace != ns && len(batch) > 0 {
						flush()
					}
					ns = e.Namespace
					batch = append(batch, e.Update)
					types[e.Update.Type]++
				}
				flush()
				if len(types) != 4 {
					t.Errorf("events covered update types %v, want all four", types)
				}
			})
		}
	}
}

// A bad spec is refused by the plugin's Configure with an InvalidArgument
// error of one line, as dsync shows it.
func TestPluginBadSpec(t *testing.T) {
	h := newHost(t)
	for name, spec := range map[string]string{
		"rename":    "rename:_id=x",
		"drop":      "drop:",
		"keep":      "keep:a,a.b",
		"filter":    `filter:{"a":{"$regex":"x"}}`,
		"mask":      "mask:email=md5",
		"set":       "set:env=staging",
		"namespace": "namespace:a.b=c",
	} {
		_, err := h.Start(context.Background(), pluginhost.Spec{Role: pluginhost.RoleTransform, Arg: spec})
		if err == nil {
			t.Errorf("%s: started", spec)
			continue
		}
		if sdk.KindOf(err) != sdk.KindInvalidArgument || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), ": "+name+": ") {
			t.Errorf("%s: error %q (kind %v), want a one-line invalid argument from the %s transform", spec, err, sdk.KindOf(err), name)
		}
	}
}

func dataString(bs []sdk.DataBatch) string {
	var b strings.Builder
	for _, x := range bs {
		fmt.Fprintf(&b, "[%s", x.Namespace)
		for _, d := range x.Docs {
			fmt.Fprintf(&b, " %x", []byte(d))
		}
		b.WriteString("]")
	}
	return b.String()
}

func updatesString(bs []sdk.UpdatesBatch) string {
	var b strings.Builder
	for _, x := range bs {
		fmt.Fprintf(&b, "[%s", x.Namespace)
		for _, u := range x.Updates {
			doc := []byte(u.Doc)
			if bytes.Equal(doc, []byte{5, 0, 0, 0, 0}) {
				doc = nil
			}
			fmt.Fprintf(&b, " {%s %d:%x %x %q}", u.Type, u.ID.Type, u.ID.Value, doc, slices.Clip(u.Unset))
		}
		b.WriteString("]")
	}
	return b.String()
}
