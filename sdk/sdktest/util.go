package sdktest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/grpc/codes"

	"github.com/dsyncio/dsync/internal/wire"
	"github.com/dsyncio/dsync/sdk"
)

// describeErr formats an error with the class it arrived with.
func describeErr(err error) string {
	if err == nil {
		return "no error"
	}
	return fmt.Sprintf("%v (kind %q, gRPC code %s)", err, sdk.KindOf(err), wire.Code(err))
}

// isCanceled reports whether err is what a canceled or expired context
// yields across the gRPC boundary.
func isCanceled(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	switch wire.Code(err) {
	case codes.Canceled, codes.DeadlineExceeded:
		return true
	}
	return sdk.KindOf(err) == sdk.KindCanceled
}

// endedByContext reports whether err is how a call ends when ctx is
// canceled or past its deadline: a canceled or deadline error, or, when the
// deadline passed and the plugin noticed first, the plugin's own deadline
// error, which arrives as a retryable error.
func endedByContext(ctx context.Context, err error) bool {
	if isCanceled(err) {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && time.Until(d) < deadlineSlack && sdk.IsRetryable(err)
}

// deadlineSlack absorbs the plugin's copy of a deadline firing a moment
// before the caller's own: gRPC sends the remaining time, not the instant.
const deadlineSlack = 250 * time.Millisecond

// idKey identifies an _id value within a namespace. Numbers of different
// BSON types with the same value are the same id, as in MongoDB.
func idKey(v bson.RawValue) string {
	switch v.Type {
	case bson.TypeInt32:
		return "n:" + strconv.FormatInt(int64(v.Int32()), 10)
	case bson.TypeInt64:
		return "n:" + strconv.FormatInt(v.Int64(), 10)
	case bson.TypeDouble:
		f := v.Double()
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return "n:" + strconv.FormatInt(int64(f), 10)
		}
	}
	return string([]byte{byte(v.Type), ':'}) + string(v.Value)
}

// idString renders an id for messages.
func idString(v bson.RawValue) string {
	if v.Type == 0 {
		return "<no id>"
	}
	return v.String()
}

// docID returns the _id of doc.
func docID(doc bson.Raw) (bson.RawValue, bool) {
	v, err := doc.LookupErr("_id")
	if err != nil {
		return bson.RawValue{}, false
	}
	return v, true
}

// rawID converts a Go value to a BSON id value.
func rawID(v any) (bson.RawValue, error) {
	if rv, ok := v.(bson.RawValue); ok {
		return rv, nil
	}
	t, b, err := bson.MarshalValue(v)
	if err != nil {
		return bson.RawValue{}, fmt.Errorf("id %v: %w", v, err)
	}
	return bson.RawValue{Type: t, Value: b}, nil
}

// mustDoc marshals a bson.D known to be valid.
func mustDoc(d bson.D) bson.Raw {
	b, err := bson.Marshal(d)
	if err != nil {
		panic(fmt.Sprintf("sdktest: marshal %v: %v", d, err))
	}
	return b
}

// docString renders a document for messages, shortened.
func docString(d bson.Raw) string {
	if d == nil {
		return "<missing>"
	}
	s := d.String()
	const max = 300
	if len(s) > max {
		s = s[:max] + fmt.Sprintf("... (%d bytes)", len(d))
	}
	return s
}

// equalDocs compares two documents (nil means missing), ignoring field
// order at every level when ignoreOrder is set.
func equalDocs(a, b bson.Raw, ignoreOrder bool) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if !ignoreOrder {
		return bytes.Equal(a, b)
	}
	ca, errA := canonical(a)
	cb, errB := canonical(b)
	return errA == nil && errB == nil && bytes.Equal(ca, cb)
}

// canonical re-encodes a document with the fields of every embedded
// document sorted by name.
func canonical(d bson.Raw) ([]byte, error) {
	var doc bson.D
	if err := bson.Unmarshal(d, &doc); err != nil {
		return nil, err
	}
	return bson.Marshal(sortD(doc))
}

func sortD(d bson.D) bson.D {
	out := make(bson.D, len(d))
	for i, e := range d {
		out[i] = bson.E{Key: e.Key, Value: sortValue(e.Value)}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func sortValue(v any) any {
	switch v := v.(type) {
	case bson.D:
		return sortD(v)
	case bson.A:
		out := make(bson.A, len(v))
		for i, x := range v {
			out[i] = sortValue(x)
		}
		return out
	}
	return v
}

// missingIDs returns n ids of the same BSON types as sample that are not
// among existing, so that a source keyed by a typed column can look them up.
func missingIDs(sample []bson.RawValue, existing map[string]bool, n int) []bson.RawValue {
	var out []bson.RawValue
	seen := map[string]bool{}
	add := func(v any) {
		rv, err := rawID(v)
		if err != nil {
			return
		}
		k := idKey(rv)
		if existing[k] || seen[k] || len(out) >= n {
			return
		}
		seen[k] = true
		out = append(out, rv)
	}
	for i := 0; len(out) < n && i < 64; i++ {
		for _, s := range sample {
			switch s.Type {
			case bson.TypeInt32:
				add(int32(math.MaxInt32 - 7 - i))
			case bson.TypeInt64:
				add(int64(math.MaxInt64 - 7 - int64(i)))
			case bson.TypeDouble:
				add(float64(1<<52) + 0.5 + float64(i))
			case bson.TypeObjectID:
				oid := bson.ObjectID{0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa, 0xf9, 0xf8, 0xf7, 0xf6, 0xf5, byte(i)}
				add(oid)
			default:
				add(fmt.Sprintf("~sdktest-missing-%d", i))
			}
		}
		add(fmt.Sprintf("~sdktest-missing-%d", i))
	}
	return out
}

// readAll reads a partition from cursor to its end.
func readAll(ctx context.Context, src sdk.Source, p sdk.Partition, cursor []byte) (docs []bson.Raw, pages [][]bson.Raw, cursors [][]byte, err error) {
	emptyRun := 0
	for range maxPages {
		page, err := src.ListData(ctx, p, cursor)
		if err != nil {
			return docs, pages, cursors, fmt.Errorf("ListData(partition %s, cursor %q): %s", partitionString(p), cursor, describeErr(err))
		}
		docs = append(docs, page.Docs...)
		pages = append(pages, page.Docs)
		if len(page.NextCursor) == 0 {
			return docs, pages, cursors, nil
		}
		if len(page.Docs) == 0 {
			emptyRun++
			if bytes.Equal(page.NextCursor, cursor) {
				return docs, pages, cursors, fmt.Errorf("ListData(partition %s) returned no documents and the same cursor %q it was given: the partition never ends", partitionString(p), cursor)
			}
			if emptyRun >= maxEmptyPages {
				return docs, pages, cursors, fmt.Errorf("ListData(partition %s) returned %d empty pages in a row without ending the partition", partitionString(p), emptyRun)
			}
		} else {
			emptyRun = 0
		}
		cursor = page.NextCursor
		cursors = append(cursors, cursor)
	}
	return docs, pages, cursors, fmt.Errorf("partition %s did not end within %d pages", partitionString(p), maxPages)
}

const (
	maxPages      = 100_000
	maxEmptyPages = 1000
)

func partitionString(p sdk.Partition) string {
	return fmt.Sprintf("{namespace %q, cursor %q}", p.Namespace, p.Cursor)
}

// planNamespaces returns the namespaces source cases plan: nil for a
// default plan.
func (e *env) planNamespaces(info sdk.Info) []string {
	e.t.Helper()
	if len(e.h.Namespaces) > 0 {
		return e.h.Namespaces
	}
	if len(e.h.ExpectedCounts) > 0 {
		nss := make([]string, 0, len(e.h.ExpectedCounts))
		for ns := range e.h.ExpectedCounts {
			nss = append(nss, ns)
		}
		slices.Sort(nss)
		return nss
	}
	if !info.Source.DefaultPlan {
		e.t.Fatalf("the source does not claim default_plan, so the suite cannot plan every namespace: set Harness.Namespaces or Harness.ExpectedCounts")
	}
	return nil
}

// plan generates a plan for nss, one namespace per call when the source
// does not claim multi_namespace_plan.
func (e *env) plan(src sdk.Source, info sdk.Info, nss []string, initial, updates bool) sdk.Plan {
	e.t.Helper()
	reqs := [][]string{nss}
	if len(nss) > 1 && !info.Source.MultiNamespacePlan {
		reqs = reqs[:0]
		for _, ns := range nss {
			reqs = append(reqs, []string{ns})
		}
	}
	var plan sdk.Plan
	for _, r := range reqs {
		p, err := src.GeneratePlan(e.ctx, sdk.PlanRequest{Namespaces: r, InitialSync: initial, Updates: updates})
		if err != nil {
			e.t.Fatalf("GeneratePlan(namespaces %q, initial_sync %v, updates %v): %s", r, initial, updates, describeErr(err))
		}
		plan.Partitions = append(plan.Partitions, p.Partitions...)
		plan.UpdatesPartitions = append(plan.UpdatesPartitions, p.UpdatesPartitions...)
	}
	if initial && len(plan.Partitions) == 0 {
		e.t.Fatalf("GeneratePlan(namespaces %q, initial_sync true) returned no partitions", nss)
	}
	return plan
}

// oneLine reports whether s is a single non-empty line.
func oneLine(s string) bool {
	return strings.TrimSpace(s) != "" && !strings.ContainsAny(s, "\n\r")
}
