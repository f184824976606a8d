package sdktest

import (
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
)

// Defaults of the optional Harness fields.
const (
	// DefaultSinkNamespace is the namespace sink cases write to.
	DefaultSinkNamespace = "sdktest.conformance"
	// DefaultUpdateEvents is how many change events the update cases collect
	// from a source that produces changes by itself.
	DefaultUpdateEvents = 20
	// DefaultCaseTimeout bounds one case.
	DefaultCaseTimeout = 2 * time.Minute
	// DefaultTransformNamespace is the namespace of the input of transform
	// cases.
	DefaultTransformNamespace = "sdktest.transform"
)

// Harness tells the suite how to run one connector and what its data looks
// like. Command (or Connector) and URL are required; every other field is
// optional and documents its default.
type Harness struct {
	// Command returns a new, unstarted command that runs the plugin: the
	// dsync binary with its plugin-serve arguments, a third-party plugin
	// executable, or the test binary re-executed as a plugin. It is called
	// once per plugin launch and must return a fresh *exec.Cmd each time.
	// The suite adds go-plugin's variables to cmd.Env and keeps the ones the
	// command sets; it reads the plugin's stdout (handshake) and stderr (log)
	// itself, so the command must not set Stdout or Stderr. The plugin runs
	// as a real subprocess with AutoMTLS, as under dsync. Exactly one of
	// Command and Connector is set.
	Command func() *exec.Cmd

	// Insecure runs the Command plugin without AutoMTLS, for a plugin that
	// cannot negotiate it (which dsync only accepts with an explicit
	// per-plugin opt-out). Connectors that dsync ships must pass with mTLS.
	Insecure bool

	// Connector returns a new connector that the suite serves in-process
	// over real gRPC (go-plugin reattach; AutoMTLS off, since go-plugin cannot
	// reattach with it). It is quicker to debug than Command but weaker: a
	// restart serves a new instance from this factory in the same process,
	// so state in package variables survives it; the plugin logs to the
	// process's stderr, not to the case log; and serving replaces the
	// process's default slog logger. The goroutine leak check then covers the
	// plugin's goroutines too.
	Connector func() sdk.Connector

	// URL returns the connection string of a fresh state for one case. It is
	// called once per case; every plugin launched in the case, restarts
	// included, is configured with it. For a source it must name a seeded
	// dataset (keep it small: hundreds to a few thousand documents, spread
	// over more than one ListData page); for a sink, a target where
	// SinkNamespace is empty. A connector that is both gets one URL for both
	// roles. Required for a connector; not used for a transform.
	URL func(t TB) string

	// Transform, when set, says the plugin is a transform (it serves
	// TransformService): the suite runs the transform cases, configured as
	// it describes, instead of the connector cases. A transform runs with
	// Command only.
	Transform *TransformHarness

	// Settings are passed to every Configure call. Default none.
	Settings map[string]string

	// Namespaces are the namespaces source cases plan. Default: the keys of
	// ExpectedCounts, else every namespace through a default plan (the source
	// must then claim default_plan).
	Namespaces []string

	// ExpectedCounts is the number of documents per namespace of the dataset
	// URL returns. When set, the plan must yield exactly these counts;
	// otherwise the suite only requires a non-empty dataset.
	ExpectedCounts map[string]int

	// Mutate, when set, applies a known set of changes to the source at url
	// and returns them in the order they were made. The suite calls it after
	// GeneratePlan captured the update cursors; the change stream must then
	// deliver these changes, each id's in order. Set it for databases whose
	// changes come from outside. Leave it nil for sources that produce
	// changes by themselves (random://); the suite then collects
	// UpdateEvents events.
	Mutate func(t TB, url string) []Change

	// UpdateEvents is how many change events the update cases collect when
	// Mutate is nil. Default DefaultUpdateEvents.
	UpdateEvents int

	// SinkNamespace is the namespace sink cases write to; it must not hold
	// seeded data. Default DefaultSinkNamespace.
	SinkNamespace string

	// ReadBack returns the documents with the given ids as the sink stored
	// them at url, in order, nil where missing. Set it when writes can be
	// read by other means (a file, a database client). It may call
	// t.Fatalf. With neither ReadBack nor ReadBackWithGetByIDs, sink cases
	// can only check that writes succeed, and say so in the log.
	ReadBack func(t TB, url, namespace string, ids []bson.RawValue) []bson.Raw

	// ReadBackWithGetByIDs reads sink writes back with the plugin's own
	// GetByIds, for connectors that are a sink and a get_by_ids source of the
	// same data. Ignored when ReadBack is set.
	ReadBackWithGetByIDs bool

	// IgnoreFieldOrder compares documents without regard to field order, for
	// stores that do not keep it (e.g. PostgreSQL jsonb). Default false:
	// field order is part of a document.
	IgnoreFieldOrder bool

	// BadURLs returns connection strings that Configure must reject with
	// InvalidArgument, given a good one. Default DefaultBadURLs.
	BadURLs func(good string) []string

	// Expect lists capabilities the plugin must claim. A missing one fails
	// info/capabilities_consistent instead of silently skipping the cases
	// that need it.
	Expect Expect

	// Skip maps case names (see CaseNames) to the reason they are not run.
	Skip map[string]string

	// CaseTimeout bounds each case. Default DefaultCaseTimeout.
	CaseTimeout time.Duration

	// NoLeakCheck turns off the goroutine leak check done after each case.
	// Set it only when other goroutine-starting work runs concurrently with
	// the suite in the same process (parallel tests), which the check would
	// report as leaks.
	NoLeakCheck bool
}

// TransformHarness describes how to run a transform plugin.
type TransformHarness struct {
	// Spec is what Configure receives: the text after NAME: in
	// `--transform NAME:SPEC`. It may be empty for a transform that takes
	// none.
	Spec string

	// BadSpecs are specs that Configure must reject with INVALID_ARGUMENT.
	// Default none: transform/configure_rejects_bad_specs is then skipped
	// and says why.
	BadSpecs []string

	// Namespace is the namespace of the input. Default
	// DefaultTransformNamespace.
	Namespace string

	// Docs are the input documents, each with an _id; the update cases
	// derive inserts, partial updates, replaces and deletes from them.
	// Default: ten documents with ids and fields of several BSON types,
	// nested documents and arrays, among them the top-level string field
	// "name".
	Docs []bson.Raw
}

// Expect lists capabilities a plugin must claim in GetInfo.
type Expect struct {
	Source   bool
	Sink     bool
	Updates  bool
	GetByIDs bool
}

// Change is one change that Harness.Mutate made to a source.
type Change struct {
	// Namespace of the changed document.
	Namespace string
	// ID is the _id value, e.g. int64(7) or "a"; numbers of different BSON
	// types compare equal when their values are equal.
	ID any
	// Delete is true when the document was removed; false for an insert or
	// an update.
	Delete bool
	// Doc is the full document after the change, optional. When set, an
	// insert or update event for this change must carry exactly this
	// document (partial events are not compared).
	Doc any
}

// DefaultBadURLs derives connection strings that every connector must
// reject from a good one: a string that is not a URL, the good URL with an
// unknown scheme, the good URL with an unknown query option, and the empty
// string.
func DefaultBadURLs(good string) []string {
	bad := []string{"::not a url"}
	if u, err := url.Parse(good); err == nil && u.Scheme != "" {
		bad = append(bad, "dsync-sdktest-no-such-scheme"+good[len(u.Scheme):])
	}
	base, frag, _ := strings.Cut(good, "#")
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	withOpt := base + sep + "no_such_option=1"
	if frag != "" {
		withOpt += "#" + frag
	}
	return append(bad, withOpt, "")
}

// withDefaults validates h and returns a copy with defaults filled in.
func (h Harness) withDefaults() (Harness, error) {
	var errs []error
	if (h.Command == nil) == (h.Connector == nil) {
		errs = append(errs, errors.New("set exactly one of Harness.Command and Harness.Connector"))
	}
	if h.Insecure && h.Connector != nil {
		errs = append(errs, errors.New("Harness.Insecure applies to Harness.Command only; in-process plugins never use mTLS"))
	}
	switch {
	case h.Transform != nil && h.Connector != nil:
		errs = append(errs, errors.New("Harness.Transform needs Harness.Command: transforms are not served in-process"))
	case h.Transform == nil && h.URL == nil:
		errs = append(errs, errors.New("Harness.URL is required"))
	}
	if h.Transform != nil {
		for i, d := range h.Transform.Docs {
			if err := d.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("Harness.Transform.Docs[%d] is not a valid BSON document: %w", i, err))
			} else if _, ok := docID(d); !ok {
				errs = append(errs, fmt.Errorf("Harness.Transform.Docs[%d] has no _id", i))
			}
		}
	}
	if h.UpdateEvents < 0 {
		errs = append(errs, fmt.Errorf("Harness.UpdateEvents is %d; it must not be negative", h.UpdateEvents))
	}
	if h.CaseTimeout < 0 {
		errs = append(errs, fmt.Errorf("Harness.CaseTimeout is %v; it must not be negative", h.CaseTimeout))
	}
	for name := range h.Skip {
		if !isCase(name) {
			errs = append(errs, fmt.Errorf("Harness.Skip names %q, which is not a case (see CaseNames)", name))
		}
	}
	for ns, n := range h.ExpectedCounts {
		if n < 0 {
			errs = append(errs, fmt.Errorf("Harness.ExpectedCounts[%q] is %d; it must not be negative", ns, n))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return h, fmt.Errorf("sdktest: invalid harness: %w", err)
	}
	if h.UpdateEvents == 0 {
		h.UpdateEvents = DefaultUpdateEvents
	}
	if h.SinkNamespace == "" {
		h.SinkNamespace = DefaultSinkNamespace
	}
	if h.BadURLs == nil {
		h.BadURLs = DefaultBadURLs
	}
	if h.CaseTimeout == 0 {
		h.CaseTimeout = DefaultCaseTimeout
	}
	if h.Transform != nil {
		th := *h.Transform
		if th.Namespace == "" {
			th.Namespace = DefaultTransformNamespace
		}
		if len(th.Docs) == 0 {
			th.Docs = sampleDocs(sampleIDs(), 1)
		}
		h.Transform = &th
	}
	return h, nil
}
