package sdktest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
)

// updatesWait bounds how long the update case waits for change events; an
// idle source sends a heartbeat at least every 5 seconds, so a stall of
// several heartbeat periods is a failure.
const updatesWait = 30 * time.Second

func (e *env) requireSource(info sdk.Info) {
	e.t.Helper()
	if info.Source == nil {
		e.t.Skipf("the plugin is not a source: GetInfo claims no source capabilities")
	}
}

// limiter reports the first max problems of a kind and counts the rest.
type limiter struct {
	t    TB
	max  int
	n    int
	what string
}

func newLimiter(t TB, what string) *limiter { return &limiter{t: t, max: 10, what: what} }

func (l *limiter) errorf(format string, args ...any) {
	l.t.Helper()
	l.n++
	if l.n <= l.max {
		l.t.Errorf(format, args...)
	}
}

func (l *limiter) done() {
	l.t.Helper()
	if l.n > l.max {
		l.t.Errorf("... and %d more %s", l.n-l.max, l.what)
	}
}

func stringSet(ss []string) map[string]bool {
	m := make(map[string]bool, len(ss))
	for _, s := range ss {
		m[s] = true
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// casePlanCoversAllDocs: the partitions of a plan cover every document of
// every requested namespace exactly once.
func casePlanCoversAllDocs(e *env) {
	t := e.t
	p, info := e.start()
	e.requireSource(info)
	nss := e.planNamespaces(info)
	plan := e.plan(p.C, info, nss, true, false)
	requested := stringSet(nss)
	seen := map[string]map[string]int{} // namespace -> id key -> partition
	counts := map[string]int{}
	lim := newLimiter(t, "problems with documents")
	for i, part := range plan.Partitions {
		ns := part.Namespace
		if ns == "" {
			t.Errorf("partition %d has an empty namespace", i)
			continue
		}
		if len(requested) > 0 && !requested[ns] {
			t.Errorf("partition %d is for namespace %q, which was not requested (requested %q)", i, ns, nss)
		}
		docs, _, _, err := readAll(e.ctx, p.C, part, nil)
		if err != nil {
			t.Errorf("partition %d: %v", i, err)
			continue
		}
		if seen[ns] == nil {
			seen[ns] = map[string]int{}
			counts[ns] = 0
		}
		for j, d := range docs {
			id, ok := docID(d)
			if !ok {
				lim.errorf("partition %d, document %d has no _id field: %s", i, j, docString(d))
				continue
			}
			k := idKey(id)
			if prev, dup := seen[ns][k]; dup {
				lim.errorf("namespace %q: _id %s is listed twice (partitions %d and %d); the partitions of a namespace must cover each document exactly once", ns, idString(id), prev, i)
				continue
			}
			seen[ns][k] = i
			counts[ns]++
		}
	}
	lim.done()

	total := 0
	for _, n := range counts {
		total += n
	}
	if want := e.h.ExpectedCounts; len(want) > 0 {
		for _, ns := range sortedKeys(want) {
			if counts[ns] != want[ns] {
				t.Errorf("namespace %q: the plan yields %d documents; Harness.ExpectedCounts says %d", ns, counts[ns], want[ns])
			}
		}
		for _, ns := range sortedKeys(counts) {
			if _, ok := want[ns]; !ok {
				t.Logf("namespace %q (%d documents) is not in Harness.ExpectedCounts", ns, counts[ns])
			}
		}
	} else if total == 0 {
		t.Errorf("the plan yields no documents: Harness.URL must name a seeded dataset for the source cases")
	}

	for _, ns := range sortedKeys(counts) {
		md, err := p.C.NamespaceMetadata(e.ctx, ns)
		if err != nil {
			t.Errorf("GetNamespaceMetadata(%q): %s", ns, describeErr(err))
			continue
		}
		n := uint64(counts[ns])
		if md.Count > 10*n+1000 {
			t.Errorf("GetNamespaceMetadata(%q): estimated count %d is far above the %d documents the plan yields", ns, md.Count, n)
		}
		t.Logf("namespace %q: %d documents in %d partitions; estimated %d documents, %d bytes", ns, n, partitionsOf(plan, ns), md.Count, md.SizeBytes)
	}
}

func partitionsOf(plan sdk.Plan, ns string) int {
	n := 0
	for _, p := range plan.Partitions {
		if p.Namespace == ns {
			n++
		}
	}
	return n
}

// caseCursorsDurable: partition and page cursors stay valid after the
// plugin is killed and started again.
func caseCursorsDurable(e *env) {
	t := e.t
	p, info := e.start()
	e.requireSource(info)
	nss := e.planNamespaces(info)
	plan := e.plan(p.C, info, nss, true, false)

	type partRead struct {
		docs    []bson.Raw
		pages   [][]bson.Raw
		cursors [][]byte
	}
	reads := make([]partRead, len(plan.Partitions))
	best := -1
	for i, part := range plan.Partitions {
		docs, pages, cursors, err := readAll(e.ctx, p.C, part, nil)
		if err != nil {
			t.Fatalf("partition %d, before the restart: %v", i, err)
		}
		reads[i] = partRead{docs, pages, cursors}
		if len(cursors) > 0 && (best < 0 || len(cursors) > len(reads[best].cursors)) {
			best = i
		}
	}

	// The cursor after page k of the partition with the most pages.
	var saved []byte
	var before []bson.Raw
	k := 0
	if best >= 0 {
		r := reads[best]
		k = max(1, len(r.pages)/2)
		saved = r.cursors[k-1]
		for _, pg := range r.pages[:k] {
			before = append(before, pg...)
		}
	} else {
		t.Logf("every partition fits in one ListData page: resuming inside a partition is not exercised; use a dataset larger than a page")
	}

	p2, _ := e.restart(p)

	if best >= 0 {
		after, _, _, err := readAll(e.ctx, p2.C, plan.Partitions[best], saved)
		if err != nil {
			t.Errorf("after killing the plugin, resuming partition %d from the cursor of page %d: %v", best, k, err)
		} else {
			where := fmt.Sprintf("partition %d resumed after a restart from the cursor of page %d of %d", best, k, len(reads[best].pages))
			compareResume(t, where, reads[best].docs, before, after, e.h.IgnoreFieldOrder)
		}
	}
	for i, part := range plan.Partitions {
		docs, _, _, err := readAll(e.ctx, p2.C, part, nil)
		if err != nil {
			t.Errorf("after killing the plugin, reading partition %d of the plan made before: %v", i, err)
			continue
		}
		compareResume(t, fmt.Sprintf("partition %d read again after a restart", i), reads[i].docs, nil, docs, e.h.IgnoreFieldOrder)
	}
}

// compareResume checks that before+after is exactly full, by _id and
// content.
func compareResume(t TB, where string, full, before, after []bson.Raw, ignoreOrder bool) {
	t.Helper()
	want := map[string]bson.Raw{}
	for _, d := range full {
		id, _ := docID(d)
		want[idKey(id)] = d
	}
	lim := newLimiter(t, "differences in "+where)
	got := map[string]bool{}
	for _, d := range before {
		id, _ := docID(d)
		got[idKey(id)] = true
	}
	for _, d := range after {
		id, ok := docID(d)
		if !ok {
			lim.errorf("%s: a document has no _id: %s", where, docString(d))
			continue
		}
		key := idKey(id)
		switch w, known := want[key]; {
		case got[key]:
			lim.errorf("%s: _id %s is returned again: the cursor does not resume where the pages before it ended", where, idString(id))
		case !known:
			lim.errorf("%s: _id %s was not in the partition when it was read through in one go", where, idString(id))
		case !equalDocs(d, w, ignoreOrder):
			lim.errorf("%s: _id %s reads as %s, before it read as %s", where, idString(id), docString(d), docString(w))
		}
		got[key] = true
	}
	for _, d := range full {
		id, _ := docID(d)
		if !got[idKey(id)] {
			lim.errorf("%s: _id %s is lost: it is in the partition but was not returned", where, idString(id))
		}
	}
	lim.done()
}

// caseGetByIDs: GetByIds returns documents in request order, nil where
// missing.
func caseGetByIDs(e *env) {
	t := e.t
	p, info := e.start()
	e.requireSource(info)
	if !info.Source.GetByIDs {
		t.Skipf("the source does not claim the get_by_ids capability")
	}
	nss := e.planNamespaces(info)
	plan := e.plan(p.C, info, nss, true, false)

	// The documents of the first namespace that has any.
	var ns string
	var docs []bson.Raw
	for _, part := range plan.Partitions {
		if ns != "" && part.Namespace != ns {
			continue
		}
		d, _, _, err := readAll(e.ctx, p.C, part, nil)
		if err != nil {
			t.Fatalf("%v", err)
		}
		if len(d) > 0 {
			ns = part.Namespace
			docs = append(docs, d...)
		}
	}
	if len(docs) == 0 {
		t.Fatalf("the plan yields no documents: Harness.URL must name a seeded dataset for the source cases")
	}
	existing := map[string]bool{}
	var sample []bson.RawValue
	for _, d := range docs {
		id, ok := docID(d)
		if !ok {
			t.Fatalf("ListData returned a document without _id: %s", docString(d))
		}
		existing[idKey(id)] = true
		if len(sample) < 8 {
			sample = append(sample, id)
		}
	}
	var picked []bson.Raw
	pickedAt := map[int]bool{}
	for _, i := range []int{0, len(docs) / 3, 2 * len(docs) / 3, len(docs) - 1} {
		if !pickedAt[i] {
			pickedAt[i] = true
			picked = append(picked, docs[i])
		}
	}
	missing := missingIDs(sample, existing, 2)
	if len(missing) < 2 {
		t.Fatalf("could not make up ids missing from namespace %q", ns)
	}
	id := func(d bson.Raw) bson.RawValue { v, _ := docID(d); return v }
	last := picked[len(picked)-1]

	type request struct {
		what string
		ids  []bson.RawValue
		want []bson.Raw
	}
	var reversed request
	reversed.what = "present ids in reverse order"
	for i := len(picked) - 1; i >= 0; i-- {
		reversed.ids = append(reversed.ids, id(picked[i]))
		reversed.want = append(reversed.want, picked[i])
	}
	requests := []request{
		reversed,
		{"missing and present ids mixed", []bson.RawValue{missing[0], id(picked[0]), missing[1], id(last)}, []bson.Raw{nil, picked[0], nil, last}},
		{"only missing ids", missing, []bson.Raw{nil, nil}},
		{"the same id twice", []bson.RawValue{id(last), id(last)}, []bson.Raw{last, last}},
		{"no ids", nil, nil},
	}
	for _, r := range requests {
		got, err := p.C.GetByIDs(e.ctx, ns, r.ids)
		if err != nil {
			t.Errorf("GetByIds(%q, %s): %s", ns, r.what, describeErr(err))
			continue
		}
		if len(got) != len(r.ids) {
			t.Errorf("GetByIds(%q, %s): %d results for %d ids; there must be one per requested id", ns, r.what, len(got), len(r.ids))
			continue
		}
		for i, w := range r.want {
			g := got[i]
			switch {
			case w == nil && g != nil:
				t.Errorf("GetByIds(%q, %s): position %d: id %s does not exist, but GetByIds returned %s", ns, r.what, i, idString(r.ids[i]), docString(g))
			case w != nil && g == nil:
				t.Errorf("GetByIds(%q, %s): position %d: id %s exists (ListData returned it), but GetByIds returned nothing", ns, r.what, i, idString(r.ids[i]))
			case w == nil:
			case idKey(id(g)) != idKey(r.ids[i]):
				t.Errorf("GetByIds(%q, %s): position %d holds the document with _id %s, but id %s was asked for there: results must be in request order", ns, r.what, i, idString(id(g)), idString(r.ids[i]))
			case !equalDocs(g, w, e.h.IgnoreFieldOrder):
				t.Errorf("GetByIds(%q, %s): id %s: GetByIds returned %s, ListData returned %s", ns, r.what, idString(r.ids[i]), docString(g), docString(w))
			}
		}
	}
}

// streamEvent is one update of a stream, with the index of its batch.
type streamEvent struct {
	ns    string
	up    sdk.Update
	batch int
}

func (ev streamEvent) String() string {
	s := fmt.Sprintf("%s %s in %q", ev.up.Type, idString(ev.up.ID), ev.ns)
	if len(ev.up.Doc) > 0 {
		s += " doc " + docString(ev.up.Doc)
	}
	if len(ev.up.Unset) > 0 {
		s += fmt.Sprintf(" unset %q", ev.up.Unset)
	}
	return s
}

func sameEvent(a, b streamEvent, ignoreOrder bool) bool {
	docsEqual := (len(a.up.Doc) == 0 && len(b.up.Doc) == 0) || equalDocs(a.up.Doc, b.up.Doc, ignoreOrder)
	return a.ns == b.ns && a.up.Type == b.up.Type && idKey(a.up.ID) == idKey(b.up.ID) &&
		docsEqual && slices.Equal(a.up.Unset, b.up.Unset)
}

// streamRun is what one StreamUpdates call delivered.
type streamRun struct {
	batches      []sdk.UpdateBatch
	events       []streamEvent
	eventBatches int
}

func (r *streamRun) add(b sdk.UpdateBatch) {
	r.batches = append(r.batches, b)
	if len(b.Updates) > 0 {
		r.eventBatches++
	}
	for _, u := range b.Updates {
		r.events = append(r.events, streamEvent{ns: b.Namespace, up: u, batch: len(r.batches) - 1})
	}
}

func (r *streamRun) heartbeats() int { return len(r.batches) - r.eventBatches }

func (r *streamRun) lastIsHeartbeat() bool {
	return len(r.batches) > 0 && len(r.batches[len(r.batches)-1].Updates) == 0
}

// midpoint returns a batch about halfway through the events with events
// after it, and its cursor; or -1 and the plan's cursor when all events came
// in one batch.
func (r *streamRun) midpoint(planCursor []byte) (int, []byte) {
	total := len(r.events)
	half := (total + 1) / 2
	n := 0
	for i, b := range r.batches {
		n += len(b.Updates)
		if n >= half && n < total && len(b.NextCursor) > 0 {
			return i, b.NextCursor
		}
	}
	return -1, planCursor
}

func (r *streamRun) eventsAfter(batch int) []streamEvent {
	for i, ev := range r.events {
		if ev.batch > batch {
			return r.events[i:]
		}
	}
	return nil
}

var errCollectTimeout = errors.New("time limit reached")

// collect streams updates until stop says so, the stream fails, or wait
// passes (errCollectTimeout).
func collect(ctx context.Context, src sdk.UpdateStreamer, req sdk.StreamRequest, wait time.Duration, stop func(*streamRun) bool) (*streamRun, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var timedOut atomic.Bool
	timer := time.AfterFunc(wait, func() {
		timedOut.Store(true)
		cancel()
	})
	defer timer.Stop()
	run := &streamRun{}
	stopped := false
	err := src.StreamUpdates(ctx, req, func(b sdk.UpdateBatch) error {
		if stopped {
			return nil
		}
		run.add(b)
		if stop(run) {
			stopped = true
			cancel()
		}
		return nil
	})
	switch {
	case stopped:
		return run, nil
	case timedOut.Load():
		return run, errCollectTimeout
	case err == nil:
		return run, errors.New("StreamUpdates returned without an error")
	}
	return run, err
}

// covers reports whether an update partition streams namespace ns.
func covers(up sdk.UpdatesPartition, requested map[string]bool, ns string) bool {
	if len(up.Namespaces) > 0 {
		return slices.Contains(up.Namespaces, ns)
	}
	return len(requested) == 0 || requested[ns]
}

// caseUpdates: the change stream delivers each id's changes in order, and
// a stream reopened from a mid-stream cursor in a restarted plugin
// continues exactly where the first one was.
func caseUpdates(e *env) {
	t := e.t
	p, info := e.start()
	e.requireSource(info)
	if !info.Source.Updates {
		t.Skipf("the source does not claim the updates capability")
	}
	nss := e.planNamespaces(info)
	plan := e.plan(p.C, info, nss, true, true)
	if len(plan.UpdatesPartitions) == 0 {
		t.Fatalf("GeneratePlan(updates true) returned no update partitions")
	}
	requested := stringSet(nss)
	for i, up := range plan.UpdatesPartitions {
		if len(up.Cursor) == 0 {
			t.Errorf("update partition %d has an empty cursor; it must be the stream position GeneratePlan captured", i)
		}
		for _, ns := range up.Namespaces {
			if len(requested) > 0 && !requested[ns] {
				t.Errorf("update partition %d streams namespace %q, which was not requested (requested %q)", i, ns, nss)
			}
		}
	}

	var changes []Change
	if e.h.Mutate != nil {
		changes = e.h.Mutate(t, e.url)
		if len(changes) == 0 {
			t.Fatalf("Harness.Mutate returned no changes")
		}
	}
	runs := make([]*streamRun, len(plan.UpdatesPartitions))
	if changes != nil {
		covered := make([]bool, len(changes))
		for i, up := range plan.UpdatesPartitions {
			want := 0
			for j, c := range changes {
				if covers(up, requested, c.Namespace) {
					want++
					covered[j] = true
				}
			}
			if want == 0 {
				continue
			}
			req := sdk.StreamRequest{Namespaces: up.Namespaces, Cursor: up.Cursor}
			run, err := collect(e.ctx, p.C, req, updatesWait, func(r *streamRun) bool { return len(r.events) >= want })
			runs[i] = run
			switch {
			case errors.Is(err, errCollectTimeout):
				t.Errorf("update partition %d delivered %d of the %d changes Mutate made within %v (%d heartbeats)", i, len(run.events), want, updatesWait, run.heartbeats())
			case err != nil:
				t.Errorf("update partition %d: StreamUpdates from the plan's cursor failed after %d events: %s", i, len(run.events), describeErr(err))
			}
		}
		reported := map[string]bool{}
		for j, c := range changes {
			if !covered[j] && !reported[c.Namespace] {
				reported[c.Namespace] = true
				t.Errorf("Mutate changed namespace %q, which no update partition of the plan streams", c.Namespace)
			}
		}
	} else {
		want := e.h.UpdateEvents
		up := plan.UpdatesPartitions[0]
		req := sdk.StreamRequest{Namespaces: up.Namespaces, Cursor: up.Cursor}
		run, err := collect(e.ctx, p.C, req, updatesWait, func(r *streamRun) bool {
			return len(r.events) >= want && (r.eventBatches >= 2 || r.lastIsHeartbeat())
		})
		runs[0] = run
		switch {
		case errors.Is(err, errCollectTimeout) && len(run.events) < want:
			t.Errorf("the change stream delivered %d of %d events within %v (%d heartbeats); a source whose changes come from outside needs Harness.Mutate", len(run.events), want, updatesWait, run.heartbeats())
		case errors.Is(err, errCollectTimeout):
		case err != nil:
			t.Errorf("StreamUpdates from the plan's update cursor failed after %d events: %s", len(run.events), describeErr(err))
		}
	}
	for i, run := range runs {
		if run != nil {
			validateRun(t, i, plan.UpdatesPartitions[i], requested, run)
		}
	}
	if changes != nil {
		checkChangeOrder(t, changes, runs, e.h.IgnoreFieldOrder)
	}

	// Resume the busiest stream from about halfway, in a new process.
	r := -1
	for i, run := range runs {
		if run != nil && len(run.events) > 0 && (r < 0 || len(run.events) > len(runs[r].events)) {
			r = i
		}
	}
	if r < 0 {
		return
	}
	run, up := runs[r], plan.UpdatesPartitions[r]
	k, cursor := run.midpoint(up.Cursor)
	after := run.eventsAfter(k)
	where := "the plan's update cursor"
	if k >= 0 {
		where = fmt.Sprintf("the cursor of batch %d (after %d of %d events)", k, len(run.events)-len(after), len(run.events))
		// The source may release history up to this cursor, never beyond.
		if err := p.C.AckUpdates(e.ctx, cursor); err != nil {
			t.Errorf("AckUpdates(%s): %s", where, describeErr(err))
		}
	}
	p2, _ := e.restart(p)
	req := sdk.StreamRequest{Namespaces: up.Namespaces, Cursor: cursor}
	run2, err := collect(e.ctx, p2.C, req, updatesWait, func(r *streamRun) bool { return len(r.events) >= len(after) })
	if err != nil && !errors.Is(err, errCollectTimeout) {
		t.Errorf("after killing the plugin, StreamUpdates from %s failed: %s", where, describeErr(err))
		return
	}
	for i := range min(len(after), len(run2.events)) {
		if !sameEvent(after[i], run2.events[i], e.h.IgnoreFieldOrder) {
			t.Errorf("after killing the plugin, the stream resumed from %s differs at event %d: it delivered %s; the first stream had %s there", where, i, run2.events[i], after[i])
			return
		}
	}
	if len(run2.events) < len(after) {
		t.Errorf("after killing the plugin, the stream resumed from %s delivered %d of the %d events the first stream had after that point within %v", where, len(run2.events), len(after), updatesWait)
		return
	}
	t.Logf("resumed from %s in a restarted plugin: the next %d events match", where, len(after))
}

// validateRun checks every batch and update of a stream against the
// protocol.
func validateRun(t TB, part int, up sdk.UpdatesPartition, requested map[string]bool, run *streamRun) {
	t.Helper()
	lim := newLimiter(t, "problems in update partition "+fmt.Sprint(part))
	for bi, b := range run.batches {
		at := fmt.Sprintf("update partition %d, batch %d", part, bi)
		if len(b.NextCursor) == 0 {
			lim.errorf("%s: next_cursor is empty; every response must carry the cursor that resumes after it", at)
		}
		if b.SourceTime.IsZero() {
			lim.errorf("%s: source_time is not set; it is the time of the last change, or the current time for a heartbeat", at)
		}
		if len(b.Updates) == 0 {
			continue
		}
		switch {
		case b.Namespace == "":
			lim.errorf("%s: %d updates with an empty namespace", at, len(b.Updates))
		case !covers(up, requested, b.Namespace):
			lim.errorf("%s: updates of namespace %q, which the update partition (namespaces %q) does not stream", at, b.Namespace, up.Namespaces)
		}
		for ui, u := range b.Updates {
			if msg := checkUpdate(u); msg != "" {
				lim.errorf("%s, update %d: %s", at, ui, msg)
			}
		}
	}
	lim.done()
}

// checkUpdate returns what is wrong with one update, or "".
func checkUpdate(u sdk.Update) string {
	if u.ID.Type == 0 {
		return "the update has no id"
	}
	switch u.Type {
	case sdk.UpdateInsert, sdk.UpdateReplace:
		if len(u.Doc) == 0 {
			return fmt.Sprintf("%s of id %s carries no document; it must carry the full document", u.Type, idString(u.ID))
		}
		id, ok := docID(u.Doc)
		if !ok {
			return fmt.Sprintf("%s of id %s: the document has no _id", u.Type, idString(u.ID))
		}
		if idKey(id) != idKey(u.ID) {
			return fmt.Sprintf("%s of id %s carries the document with _id %s", u.Type, idString(u.ID), idString(id))
		}
	case sdk.UpdateDelete:
		if len(u.Doc) > 0 {
			return fmt.Sprintf("delete of id %s carries a document; its data must be empty", idString(u.ID))
		}
	case sdk.UpdatePartial:
		if len(u.Doc) == 0 && len(u.Unset) == 0 {
			return fmt.Sprintf("partial update of id %s sets and unsets nothing", idString(u.ID))
		}
	default:
		return fmt.Sprintf("update of id %s has unknown type %d", idString(u.ID), u.Type)
	}
	return ""
}

// checkChangeOrder checks that the streams delivered, for every id, the
// changes Mutate made, in the order it made them.
func checkChangeOrder(t TB, changes []Change, runs []*streamRun, ignoreOrder bool) {
	t.Helper()
	type history struct {
		ns      string
		id      bson.RawValue
		changes []Change
		events  []streamEvent
	}
	var order []string
	byKey := map[string]*history{}
	for i, c := range changes {
		id, err := rawID(c.ID)
		if err != nil {
			t.Fatalf("Harness.Mutate change %d: %v", i, err)
		}
		key := c.Namespace + "\x00" + idKey(id)
		h := byKey[key]
		if h == nil {
			h = &history{ns: c.Namespace, id: id}
			byKey[key] = h
			order = append(order, key)
		}
		h.changes = append(h.changes, c)
	}
	lim := newLimiter(t, "ids with changes out of order")
	for _, run := range runs {
		if run == nil {
			continue
		}
		for _, ev := range run.events {
			key := ev.ns + "\x00" + idKey(ev.up.ID)
			h := byKey[key]
			if h == nil {
				lim.errorf("the stream delivered %s, but Mutate did not change that document", ev)
				continue
			}
			h.events = append(h.events, ev)
		}
	}
	for _, key := range order {
		h := byKey[key]
		var want, got []string
		for _, c := range h.changes {
			want = append(want, changeClass(c.Delete))
		}
		for _, ev := range h.events {
			got = append(got, changeClass(ev.up.Type == sdk.UpdateDelete))
		}
		if !slices.Equal(want, got) {
			lim.errorf("namespace %q, id %s: Mutate made [%s] in this order; the stream delivered [%s]", h.ns, idString(h.id), strings.Join(want, " "), strings.Join(got, " "))
			continue
		}
		for i, c := range h.changes {
			ev := h.events[i]
			if c.Doc == nil || (ev.up.Type != sdk.UpdateInsert && ev.up.Type != sdk.UpdateReplace) {
				continue
			}
			b, err := bson.Marshal(c.Doc)
			if err != nil {
				t.Fatalf("Harness.Mutate change of id %s: marshal Doc: %v", idString(h.id), err)
			}
			if !equalDocs(ev.up.Doc, b, ignoreOrder) {
				lim.errorf("namespace %q, id %s, change %d: the %s event carries %s; Mutate made the document %s", h.ns, idString(h.id), i, ev.up.Type, docString(ev.up.Doc), docString(b))
			}
		}
	}
	lim.done()
}

func changeClass(deleted bool) string {
	if deleted {
		return "delete"
	}
	return "write"
}
