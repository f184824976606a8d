package sdktest_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
	"github.com/dsyncio/dsync/sdk/sdktest"
)

// transformHelperEnv makes the test binary serve the named upperTransform
// variant as a plugin instead of running tests.
const transformHelperEnv = "SDKTEST_HELPER_TRANSFORM"

// Variants of upperTransform: a correct one and one per misbehaviour the
// transform cases must catch.
const (
	transformGood       = "good"
	transformVolatile   = "volatile"    // adds a counter: not deterministic
	transformReorder    = "reorder"     // reverses the order of updates
	transformPlainError = "plain-error" // rejects bad specs with an unclassified error
)

// upperTransform upper-cases the string values of the top-level fields its
// spec lists (comma-separated).
type upperTransform struct {
	variant string
	fields  []string
	seq     atomic.Int64
}

var _ sdk.Transform = (*upperTransform)(nil)

func newTransform(variant string) sdk.Transform { return &upperTransform{variant: variant} }

func (u *upperTransform) Configure(_ context.Context, spec string) error {
	if spec == "" || spec == "bad" {
		if u.variant == transformPlainError {
			return errors.New("bad spec")
		}
		return sdk.InvalidArgument("spec %q: want comma-separated field names", spec)
	}
	u.fields = strings.Split(spec, ",")
	return nil
}

func (u *upperTransform) doc(d bson.Raw) bson.Raw {
	elems, err := d.Elements()
	if err != nil {
		return d
	}
	out := make(bson.D, 0, len(elems)+1)
	for _, e := range elems {
		v := any(e.Value())
		if s, ok := e.Value().StringValueOK(); ok && slices.Contains(u.fields, e.Key()) {
			v = strings.ToUpper(s)
		}
		out = append(out, bson.E{Key: e.Key(), Value: v})
	}
	if u.variant == transformVolatile {
		out = append(out, bson.E{Key: "seq", Value: u.seq.Add(1)})
	}
	b, err := bson.Marshal(out)
	if err != nil {
		return d
	}
	return b
}

func (u *upperTransform) TransformData(_ context.Context, ns string, docs []bson.Raw) ([]sdk.DataBatch, error) {
	if len(docs) == 0 {
		return nil, nil
	}
	out := make([]bson.Raw, len(docs))
	for i, d := range docs {
		out[i] = u.doc(d)
	}
	return []sdk.DataBatch{{Namespace: ns, Docs: out}}, nil
}

func (u *upperTransform) TransformUpdates(_ context.Context, ns string, ups []sdk.Update) ([]sdk.UpdatesBatch, error) {
	out := make([]sdk.Update, len(ups))
	for i, up := range ups {
		if len(up.Doc) > 0 {
			up.Doc = u.doc(up.Doc)
		}
		out[i] = up
	}
	if u.variant == transformReorder {
		slices.Reverse(out)
	}
	return []sdk.UpdatesBatch{{Namespace: ns, Updates: out}}, nil
}

func transformCommand(variant string) func() *exec.Cmd {
	return func() *exec.Cmd {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), transformHelperEnv+"="+variant)
		if _, ok := os.LookupEnv("GORACE"); !ok {
			cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0")
		}
		return cmd
	}
}

func transformHarness(variant string) sdktest.Harness {
	return sdktest.Harness{
		Command:   transformCommand(variant),
		Transform: &sdktest.TransformHarness{Spec: "name", BadSpecs: []string{"", "bad"}},
	}
}

func TestTransformConformance(t *testing.T) {
	sdktest.Run(t, transformHarness(transformGood))
}

// TestTransformRunsTransformCasesOnly: a transform gets the transform
// cases, a connector the others.
func TestTransformRunsTransformCasesOnly(t *testing.T) {
	h := transformHarness(transformGood)
	h.Skip = only()
	var names []string
	for name := range runCases(t, h) {
		names = append(names, name)
	}
	slices.Sort(names)
	var want []string
	for _, n := range sdktest.CaseNames() {
		if strings.HasPrefix(n, "transform/") {
			want = append(want, n)
		}
	}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("cases run against a transform: %q, want %q", names, want)
	}
}

// TestBrokenTransforms proves that each misbehaviour fails the case meant
// to catch it, with a reason that names the problem.
func TestBrokenTransforms(t *testing.T) {
	tests := []struct {
		variant string
		cases   []string
		reason  string
	}{
		{transformVolatile, []string{"transform/documents_deterministic"}, "Transform is not deterministic: the same 10 documents transformed twice"},
		{transformVolatile, []string{"transform/updates_deterministic_and_ordered"}, "Transform is not deterministic"},
		{transformReorder, []string{"transform/updates_deterministic_and_ordered"}, "within a namespace the order of updates must be kept"},
		{transformPlainError, []string{"transform/configure_rejects_bad_specs"}, `Configure(""): got bad spec (kind "fatal", gRPC code Internal); want gRPC INVALID_ARGUMENT`},
	}
	for _, tt := range tests {
		t.Run(tt.variant+"/"+tt.cases[0], func(t *testing.T) {
			h := transformHarness(tt.variant)
			h.Skip = only(tt.cases...)
			res := runCases(t, h)
			for _, name := range tt.cases {
				r := res[name]
				if r.Status != sdktest.StatusFail {
					t.Fatalf("case %s: status %s, want fail; reason %q\nlog:\n%s", name, r.Status, r.Reason, strings.Join(r.Log, "\n"))
				}
				if !strings.Contains(r.Reason, tt.reason) {
					t.Errorf("case %s failed with reason %q; want it to mention %q", name, r.Reason, tt.reason)
				}
				t.Logf("%s: %s", name, r.Reason)
			}
		})
	}
}

// TestTransformCasesOnConnector: transform cases against a plugin that
// serves only the connector service say so.
func TestTransformCasesOnConnector(t *testing.T) {
	h := transformHarness(transformGood)
	h.Command = command(variantGood)
	h.Skip = only("transform/get_transform_info")
	r := runCases(t, h)["transform/get_transform_info"]
	if r.Status != sdktest.StatusFail || !strings.Contains(r.Reason, "the plugin does not serve dsync.v1.TransformService") {
		t.Fatalf("status %s, reason %q; want a failure saying the plugin serves no transform", r.Status, r.Reason)
	}
}

func TestTransformBadSpecsSkippedWithoutSpecs(t *testing.T) {
	h := transformHarness(transformGood)
	h.Transform.BadSpecs = nil
	h.Skip = only("transform/configure_rejects_bad_specs")
	r := runCases(t, h)["transform/configure_rejects_bad_specs"]
	if r.Status != sdktest.StatusSkip || !strings.Contains(r.Reason, "Harness.Transform.BadSpecs") {
		t.Fatalf("status %s, reason %q; want a skip naming Harness.Transform.BadSpecs", r.Status, r.Reason)
	}
}

func TestDetect(t *testing.T) {
	for _, tt := range []struct {
		cmd  func() *exec.Cmd
		want sdktest.PluginKind
	}{
		{command(variantGood), sdktest.KindConnector},
		{transformCommand(transformGood), sdktest.KindTransform},
	} {
		got, err := sdktest.Detect(t.Context(), sdktest.Harness{Command: tt.cmd})
		if err != nil || got != tt.want {
			t.Errorf("Detect = %v, %v; want %v", got, err, tt.want)
		}
	}
	_, err := sdktest.Detect(t.Context(), sdktest.Harness{Command: func() *exec.Cmd {
		return exec.Command("/bin/sh", "-c", "echo not a plugin >&2; exit 3")
	}})
	if err == nil || !strings.Contains(err.Error(), "not a plugin") {
		t.Errorf("Detect of a program that is not a plugin: %v; want an error with its stderr", err)
	}
}

func TestInvalidTransformHarness(t *testing.T) {
	h := transformHarness(transformGood)
	h.Command = nil
	h.Connector = func() sdk.Connector { return nil }
	if _, err := sdktest.RunCases(t.Context(), h, nil); err == nil || !strings.Contains(err.Error(), "Harness.Transform needs Harness.Command") {
		t.Fatalf("RunCases: %v; want an error about Harness.Command", err)
	}
	h = transformHarness(transformGood)
	h.Transform.Docs = []bson.Raw{mustMarshal(t, bson.D{{Key: "a", Value: 1}})}
	if _, err := sdktest.RunCases(t.Context(), h, nil); err == nil || !strings.Contains(err.Error(), "Harness.Transform.Docs[0] has no _id") {
		t.Fatalf("RunCases: %v; want an error about the missing _id", err)
	}
}

func mustMarshal(t *testing.T, d bson.D) bson.Raw {
	t.Helper()
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
