package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/dsyncio/dsync/coordinator"
	"github.com/dsyncio/dsync/coordinator/checkpoint"
	"github.com/dsyncio/dsync/internal/spi"
)

// Defaults of Options.
const (
	DefaultParallel        = 4
	DefaultBatchDocs       = 1000
	DefaultBatchBytes      = 8 << 20
	DefaultRecheckAttempts = 3
)

// Options configure a verification. Fields without a stated default are
// zero by default.
type Options struct {
	// A and B are the two datasets. A's plan drives the scan; B's documents
	// are fetched by id. Both must be sources and implement spi.IDGetter
	// (unless CountOnly). Required.
	A, B spi.Source
	// Store keeps the progress and the results of the run, so that a
	// stopped run resumes. Required unless CountOnly.
	Store *checkpoint.Store

	// Namespaces selects A's namespaces and names their counterparts in B,
	// with the syntax and meaning of a sync's mapping. The zero value
	// compares every namespace of A and of B under the same name.
	Namespaces coordinator.NamespaceMap

	// IgnoreFieldOrder compares documents whose fields, at any depth, are
	// in another order as equal. Default: field order is significant.
	IgnoreFieldOrder bool
	// ExcludeFields are dotted paths removed from both documents before
	// comparing (such as fields a transform adds). A path reaches into
	// embedded documents, and into each document of an array on the way.
	// _id cannot be excluded.
	ExcludeFields []string
	// NumericEquivalence compares numbers by exact value whatever their type:
	// int32 1, int64 1, double 1.0 and decimal 1.0 are then equal. Default:
	// a number's type is part of its value. Strings never equal numbers.
	NumericEquivalence bool

	// SamplePercent, in (0, 100], verifies that share of each side's
	// partitions, chosen at random; 0 means all. A sampled run cannot prove
	// coverage, and says so.
	SamplePercent float64
	// SampleSeed fixes the sample. Default: chosen at random when the run
	// is planned, and kept by the run.
	SampleSeed uint64

	// EstimatedCounts treats the sources' namespace counts as estimates: a
	// scan that returned fewer documents than a side's count is a warning,
	// not a coverage failure. Default: counts are taken as exact.
	EstimatedCounts bool

	// Recheck, when positive, waits that long and fetches every differing
	// id again from both sides, up to RecheckAttempts times while the
	// differences keep changing, so that only persistent differences are
	// reported (for data that changes during the verification).
	Recheck time.Duration
	// RecheckAttempts bounds the rechecks. Default 3.
	RecheckAttempts int

	// Repair rewrites on B the documents that differ or are missing, as A
	// holds them, and deletes B's extra documents, then verifies those ids
	// again. B must be a spi.Sink whose Info says it is one.
	Repair bool

	// Reset discards the stored state of this run and starts over. Without
	// it a stopped run resumes, and a finished one starts over.
	Reset bool

	// CountOnly compares the namespaces' counts (spi.NamespaceMetadata)
	// instead of the documents. It needs no Store and no GetByIDs.
	CountOnly bool

	// Parallel is the number of partitions scanned at once, and of
	// namespaces reconciled at once. Default 4.
	Parallel int
	// BatchDocs and BatchBytes bound one GetByIDs call: at most BatchDocs
	// ids, and ids of at most BatchBytes of documents on the scanned side.
	// Defaults 1000 and 8 MiB.
	BatchDocs  int
	BatchBytes int

	// Retry is the policy for retryable errors; zero fields take the
	// coordinator's defaults.
	Retry coordinator.RetryPolicy
	// Logger receives progress and warnings. Default: discard.
	Logger *slog.Logger
	// ADisplay and BDisplay describe the datasets in the summary, already
	// redacted. Default: the connectors' Info.ID.
	ADisplay, BDisplay string

	// now is the clock. Default: time.Now.
	now func() time.Time
}

// EnsureDefaults fills in the default of every unset field and returns o.
func (o *Options) EnsureDefaults() *Options {
	if o.Parallel == 0 {
		o.Parallel = DefaultParallel
	}
	if o.BatchDocs == 0 {
		o.BatchDocs = DefaultBatchDocs
	}
	if o.BatchBytes == 0 {
		o.BatchBytes = DefaultBatchBytes
	}
	if o.RecheckAttempts == 0 {
		o.RecheckAttempts = DefaultRecheckAttempts
	}
	if o.Retry.InitialBackoff == 0 {
		o.Retry.InitialBackoff = coordinator.DefaultInitialBackoff
	}
	if o.Retry.MaxBackoff == 0 {
		o.Retry.MaxBackoff = coordinator.DefaultMaxBackoff
	}
	if o.Retry.Jitter == 0 {
		o.Retry.Jitter = coordinator.DefaultJitter
	}
	if o.Retry.MaxConsecutiveFailures == 0 {
		o.Retry.MaxConsecutiveFailures = coordinator.DefaultMaxConsecutiveFailures
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.now == nil {
		o.now = time.Now
	}
	return o
}

// Validate reports whether the options can run; errors wrap
// [ErrInvalidOptions] and name the option.
func (o *Options) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidOptions}, args...)...)
	}
	switch {
	case o.A == nil || o.B == nil:
		return bad("both A and B are required")
	case o.Store == nil && !o.CountOnly:
		return bad("no checkpoint store")
	case o.Parallel < 1:
		return bad("parallel must be at least 1, got %d", o.Parallel)
	case o.BatchDocs < 1 || o.BatchBytes < 1:
		return bad("batch docs and batch bytes must be positive")
	case o.SamplePercent < 0 || o.SamplePercent > 100:
		return bad("sample must be a percentage in (0, 100], got %g", o.SamplePercent)
	case o.Recheck < 0:
		return bad("recheck must not be negative, got %s", o.Recheck)
	case o.RecheckAttempts < 1:
		return bad("recheck attempts must be at least 1, got %d", o.RecheckAttempts)
	case o.CountOnly && (o.Repair || o.SamplePercent > 0 || o.Recheck > 0):
		return bad("count-only compares counts, not documents: it cannot be combined with repair, sample or recheck")
	}
	for _, p := range o.ExcludeFields {
		parts := strings.Split(p, ".")
		switch {
		case slices.Contains(parts, ""):
			return bad("excluded field %q has an empty part", p)
		case parts[0] == "_id":
			return bad("excluded field %q: _id identifies documents and cannot be excluded", p)
		}
	}
	return nil
}

// runOptions are the options that define a verify run, and so its id: the
// datasets, the mapping and everything that changes what counts as a
// difference. Parallelism, batching, rechecks and repair are not part of
// it: they may change when a stopped run is resumed.
type runOptions struct {
	A                  string   `json:"a"`
	B                  string   `json:"b"`
	Namespaces         []string `json:"namespaces"`
	IgnoreFieldOrder   bool     `json:"ignore_field_order"`
	ExcludeFields      []string `json:"exclude_fields"`
	NumericEquivalence bool     `json:"numeric_equivalence"`
	SamplePercent      float64  `json:"sample_percent"`
}

func newRunOptions(aID, bID string, o *Options) runOptions {
	ex := slices.Clone(o.ExcludeFields)
	slices.Sort(ex)
	ex = slices.Compact(ex)
	if ex == nil {
		ex = []string{}
	}
	ns := o.Namespaces.Entries()
	if ns == nil {
		ns = []string{}
	}
	return runOptions{A: aID, B: bID, Namespaces: ns, IgnoreFieldOrder: o.IgnoreFieldOrder,
		ExcludeFields: ex, NumericEquivalence: o.NumericEquivalence, SamplePercent: o.SamplePercent}
}

func (r runOptions) id() string {
	b, err := json.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("verify: encode run options: %v", err)) // plain values: cannot fail
	}
	sum := sha256.Sum256(append([]byte("dsync-verify-v1\n"), b...))
	return "v" + hex.EncodeToString(sum[:8])
}

// RunID returns the id of the verify run between the datasets aID and bID
// (spi.Info.ID) with o's mapping and comparison options: "v" and 16 hex
// digits. The same command resumes the same run.
func RunID(aID, bID string, o Options) string { return newRunOptions(aID, bID, &o).id() }
