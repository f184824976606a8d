package sdktest

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/grpc/codes"

	"github.com/dsyncio/dsync/internal/wire"
	dsyncv1 "github.com/dsyncio/dsync/proto/dsync/v1"
	"github.com/dsyncio/dsync/sdk"
)

// transformService is the full name of the transform service, for messages.
const transformService = "dsync.v1.TransformService"

// knownTypes are the data types of protocol v1.
var knownTypes = []dsyncv1.DataType{dsyncv1.DataType_DATA_TYPE_BSON, dsyncv1.DataType_DATA_TYPE_JSON}

// hostType is the data type dsync uses with a transform that accepts these
// types: BSON when it is accepted, else the first accepted type. It sends
// that type and asks for the same type back.
func hostType(accepted []dsyncv1.DataType) dsyncv1.DataType {
	if len(accepted) == 0 || slices.Contains(accepted, dsyncv1.DataType_DATA_TYPE_BSON) {
		return dsyncv1.DataType_DATA_TYPE_BSON
	}
	return accepted[0]
}

func sdkType(t dsyncv1.DataType) sdk.DataType {
	if t == dsyncv1.DataType_DATA_TYPE_JSON {
		return sdk.DataTypeJSON
	}
	return sdk.DataTypeBSON
}

// encode encodes a document known to be valid in data type t.
func encode(t TB, doc bson.Raw, dt dsyncv1.DataType) []byte {
	t.Helper()
	b, err := wire.EncodeDoc(doc, sdkType(dt))
	if err != nil {
		t.Fatalf("encode %s as %s: %v", docString(doc), dt, err)
	}
	return b
}

// transformInfo calls GetTransformInfo, before or after Configure, and fails
// the case when the plugin does not serve TransformService.
func (e *env) transformInfo(p *instance, when string) (accepted, produced []dsyncv1.DataType) {
	e.t.Helper()
	resp, err := p.rawT.GetTransformInfo(e.ctx, &dsyncv1.GetTransformInfoRequest{})
	if err != nil {
		err = wire.FromStatus(err)
		if wire.Code(err) == codes.Unimplemented {
			e.t.Fatalf("GetTransformInfo %s: %s: the plugin does not serve %s (is it a connector?)", when, describeErr(err), transformService)
		}
		e.t.Fatalf("GetTransformInfo %s: %s; dsync calls it before Configure to choose the data type", when, describeErr(err))
	}
	return resp.GetAcceptedDataTypes(), resp.GetProducedDataTypes()
}

// startTransform launches a transform and configures it with the harness
// spec through dsync's own client, which negotiates the data type.
func (e *env) startTransform() *instance {
	e.t.Helper()
	p := e.launch()
	if err := p.T.Configure(e.ctx, e.h.Transform.Spec); err != nil {
		e.t.Fatalf("Configure with the harness spec %q: %s%s", e.h.Transform.Spec, describeErr(err), e.log.tailNote())
	}
	return p
}

// caseTransformInfo: GetTransformInfo works before Configure, lists data
// types of the protocol with one dsync can use both ways, and is stable.
func caseTransformInfo(e *env) {
	t := e.t
	p := e.launch()
	acc, prod := e.transformInfo(p, "before Configure")
	if len(acc) == 0 {
		t.Errorf("GetTransformInfo: accepted_data_types is empty; list DATA_TYPE_BSON and/or DATA_TYPE_JSON")
	}
	if len(prod) == 0 {
		t.Errorf("GetTransformInfo: produced_data_types is empty; list DATA_TYPE_BSON and/or DATA_TYPE_JSON")
	}
	for _, dt := range append(slices.Clone(acc), prod...) {
		if !slices.Contains(knownTypes, dt) {
			t.Errorf("GetTransformInfo lists data type %s, which protocol v1 does not define", dt)
		}
	}
	if len(acc) > 0 && len(prod) > 0 {
		if dt := hostType(acc); !slices.Contains(prod, dt) {
			t.Errorf("GetTransformInfo: dsync sends %s (DATA_TYPE_BSON when accepted, else the first accepted type) and asks for the same type back, but produced_data_types is %v", dt, prod)
		}
	}
	acc2, prod2 := e.transformInfo(p, "called again")
	if !slices.Equal(acc, acc2) || !slices.Equal(prod, prod2) {
		t.Errorf("GetTransformInfo is not stable: accepted %v produced %v, then accepted %v produced %v", acc, prod, acc2, prod2)
	}
	if err := p.T.Configure(e.ctx, e.h.Transform.Spec); err != nil {
		t.Fatalf("Configure with the harness spec %q: %s%s", e.h.Transform.Spec, describeErr(err), e.log.tailNote())
	}
	acc3, prod3 := e.transformInfo(p, "after Configure")
	if !slices.Equal(acc, acc3) || !slices.Equal(prod, prod3) {
		t.Errorf("GetTransformInfo changed with Configure: accepted %v produced %v before, accepted %v produced %v after", acc, prod, acc3, prod3)
	}
}

// caseTransformBeforeConfigure: Transform before Configure fails with
// FAILED_PRECONDITION.
func caseTransformBeforeConfigure(e *env) {
	t := e.t
	th := e.h.Transform
	p := e.launch()
	acc, _ := e.transformInfo(p, "before Configure")
	dt := hostType(acc)
	_, err := p.rawT.Transform(e.ctx, &dsyncv1.TransformRequest{
		Namespace: th.Namespace, Data: [][]byte{encode(t, th.Docs[0], dt)}, DataType: dt, OutputDataType: dt,
	})
	err = wire.FromStatus(err)
	switch {
	case err == nil:
		t.Errorf("Transform before Configure succeeded; it must fail with FAILED_PRECONDITION")
	case sdk.KindOf(err) != sdk.KindFailedPrecondition:
		t.Errorf("Transform before Configure: got %s; want kind %q (gRPC FAILED_PRECONDITION)", describeErr(err), sdk.KindFailedPrecondition)
	}
}

// caseTransformBadSpecs: Configure rejects bad specs with INVALID_ARGUMENT
// and a one-line message, and leaves the plugin unconfigured.
func caseTransformBadSpecs(e *env) {
	t := e.t
	th := e.h.Transform
	if len(th.BadSpecs) == 0 {
		t.Skipf("no bad specs to try: set Harness.Transform.BadSpecs (dsync conformance --bad-spec SPEC)")
	}
	p := e.launch()
	for _, spec := range th.BadSpecs {
		_, err := p.rawT.Configure(e.ctx, &dsyncv1.TransformServiceConfigureRequest{Spec: spec})
		err = wire.FromStatus(err)
		if err == nil {
			t.Errorf("Configure(%q) succeeded; it must fail with INVALID_ARGUMENT", spec)
			// This plugin is configured now: use a fresh one for the rest.
			p.stop()
			p = e.launch()
			continue
		}
		if wire.Code(err) != codes.InvalidArgument || sdk.KindOf(err) != sdk.KindInvalidArgument {
			t.Errorf("Configure(%q): got %s; want gRPC INVALID_ARGUMENT (kind %q) with a message that says what to change", spec, describeErr(err), sdk.KindInvalidArgument)
			continue
		}
		if msg := err.Error(); !oneLine(msg) {
			t.Errorf("Configure(%q): the INVALID_ARGUMENT message must be one non-empty line a user can act on; got %q", spec, msg)
		}
	}
	acc, _ := e.transformInfo(p, "after the bad specs")
	dt := hostType(acc)
	_, err := p.rawT.Transform(e.ctx, &dsyncv1.TransformRequest{
		Namespace: th.Namespace, Data: [][]byte{encode(t, th.Docs[0], dt)}, DataType: dt, OutputDataType: dt,
	})
	err = wire.FromStatus(err)
	switch {
	case err == nil:
		t.Errorf("Transform succeeded after Configure failed for every bad spec; the plugin must stay unconfigured (FAILED_PRECONDITION)")
	case sdk.KindOf(err) != sdk.KindFailedPrecondition:
		t.Errorf("Transform after Configure failed for every bad spec: got %s; want kind %q", describeErr(err), sdk.KindFailedPrecondition)
	}
	if err := p.T.Configure(e.ctx, th.Spec); err != nil {
		t.Errorf("Configure with the harness spec %q after the bad specs: %s", th.Spec, describeErr(err))
	}
}

// transformDocs runs docs through the transform and checks that every
// output document has an _id.
func (e *env) transformDocs(p *instance, when string, docs []bson.Raw) []sdk.DataBatch {
	e.t.Helper()
	ns := e.h.Transform.Namespace
	out, err := p.T.TransformData(e.ctx, ns, docs)
	if err != nil {
		e.t.Fatalf("Transform(%q, %d documents), %s: %s%s", ns, len(docs), when, describeErr(err), e.log.tailNote())
	}
	lim := newLimiter(e.t, "documents without _id")
	for i, b := range out {
		for j, d := range b.Docs {
			if _, ok := docID(d); !ok {
				lim.errorf("Transform(%q), %s: document %d of output batch %d (namespace %q) has no _id: %s", ns, when, j, i, b.Namespace, docString(d))
			}
		}
	}
	lim.done()
	return out
}

// sameDataBatches describes the first difference between two outputs, or
// returns "".
func sameDataBatches(a, b []sdk.DataBatch) string {
	if len(a) != len(b) {
		return fmt.Sprintf("%d output batches, then %d", len(a), len(b))
	}
	for i := range a {
		if a[i].Namespace != b[i].Namespace {
			return fmt.Sprintf("batch %d is for namespace %q, then %q", i, a[i].Namespace, b[i].Namespace)
		}
		if len(a[i].Docs) != len(b[i].Docs) {
			return fmt.Sprintf("batch %d holds %d documents, then %d", i, len(a[i].Docs), len(b[i].Docs))
		}
		for j := range a[i].Docs {
			if !bytes.Equal(a[i].Docs[j], b[i].Docs[j]) {
				return fmt.Sprintf("document %d of batch %d: %s", j, i, docDiff(a[i].Docs[j], b[i].Docs[j]))
			}
		}
	}
	return ""
}

// docDiff describes the first difference between two documents, field by
// field.
func docDiff(a, b bson.Raw) string {
	ea, errA := a.Elements()
	eb, errB := b.Elements()
	if errA != nil || errB != nil {
		return fmt.Sprintf("%s, then %s", docString(a), docString(b))
	}
	for k := 0; k < max(len(ea), len(eb)); k++ {
		switch {
		case k >= len(ea):
			return fmt.Sprintf("field %q (%s) appears the second time only", eb[k].Key(), eb[k].Value())
		case k >= len(eb):
			return fmt.Sprintf("field %q (%s) appears the first time only", ea[k].Key(), ea[k].Value())
		case ea[k].Key() != eb[k].Key():
			return fmt.Sprintf("field %d is %q, then %q", k, ea[k].Key(), eb[k].Key())
		case !ea[k].Value().Equal(eb[k].Value()):
			return fmt.Sprintf("field %q is %s, then %s", ea[k].Key(), ea[k].Value(), eb[k].Value())
		}
	}
	return fmt.Sprintf("%s, then %s", docString(a), docString(b))
}

// caseTransformDocs: the same documents give the same output, also after a
// restart; no documents give none.
func caseTransformDocs(e *env) {
	t := e.t
	th := e.h.Transform
	p := e.startTransform()
	first := e.transformDocs(p, "first call", th.Docs)
	second := e.transformDocs(p, "second call", th.Docs)
	if d := sameDataBatches(first, second); d != "" {
		t.Errorf("Transform is not deterministic: the same %d documents transformed twice by one process differ: %s", len(th.Docs), d)
	}
	empty := e.transformDocs(p, "of no documents", nil)
	if n := countDocs(empty); n > 0 {
		t.Errorf("Transform of no documents produced %d documents", n)
	}
	p2 := e.restartTransform(p)
	third := e.transformDocs(p2, "after a restart", th.Docs)
	if d := sameDataBatches(first, third); d != "" {
		t.Errorf("Transform is not deterministic: the same %d documents transformed before and after a restart differ: %s", len(th.Docs), d)
	}
	checkDocOrder(t, th.Docs, first)
	t.Logf("%d documents in, %d out in %d batches", len(th.Docs), countDocs(first), len(first))
}

func countDocs(bs []sdk.DataBatch) int {
	n := 0
	for _, b := range bs {
		n += len(b.Docs)
	}
	return n
}

// restartTransform kills a transform and starts a fresh, configured one.
func (e *env) restartTransform(p *instance) *instance {
	e.t.Helper()
	p.crash()
	return e.startTransform()
}

// checkDocOrder logs documents that come out of a namespace in another
// order than they went in: allowed (their ids differ), but surprising.
func checkDocOrder(t TB, in []bson.Raw, out []sdk.DataBatch) {
	t.Helper()
	pos := map[string]int{}
	for i, d := range in {
		if id, ok := docID(d); ok {
			if _, seen := pos[idKey(id)]; !seen {
				pos[idKey(id)] = i
			}
		}
	}
	last := map[string]int{}
	for _, b := range out {
		for _, d := range b.Docs {
			id, ok := docID(d)
			if !ok {
				continue
			}
			i, known := pos[idKey(id)]
			if !known {
				continue
			}
			if prev, ok := last[b.Namespace]; ok && i < prev {
				t.Logf("namespace %q: _id %s (input position %d) comes out after a document of input position %d: documents are reordered", b.Namespace, idString(id), i, prev)
				return
			}
			last[b.Namespace] = i
		}
	}
}

// sampleUpdates derives changes from docs: every document inserted, then
// partially updated (its first two fields set again, its third removed),
// then replaced; finally the first one deleted and inserted again.
func sampleUpdates(docs []bson.Raw) []sdk.Update {
	var ups []sdk.Update
	ids := make([]bson.RawValue, len(docs))
	for i, d := range docs {
		ids[i], _ = docID(d)
		ups = append(ups, sdk.Update{ID: ids[i], Type: sdk.UpdateInsert, Doc: d})
	}
	for i, d := range docs {
		elems, _ := d.Elements()
		var set bson.D
		var unset []string
		for _, el := range elems {
			switch {
			case el.Key() == "_id":
			case len(set) < 2:
				set = append(set, bson.E{Key: el.Key(), Value: el.Value()})
			case unset == nil:
				unset = []string{el.Key()}
			}
		}
		if len(set) == 0 {
			set = bson.D{{Key: "sdktest", Value: int32(i)}}
		}
		ups = append(ups, sdk.Update{ID: ids[i], Type: sdk.UpdatePartial, Doc: mustDoc(set), Unset: unset})
	}
	for i, d := range docs {
		ups = append(ups, sdk.Update{ID: ids[i], Type: sdk.UpdateReplace, Doc: d})
	}
	if len(docs) > 0 {
		ups = append(ups,
			sdk.Update{ID: ids[0], Type: sdk.UpdateDelete},
			sdk.Update{ID: ids[0], Type: sdk.UpdateInsert, Doc: docs[0]})
	}
	return ups
}

// transformUpdates runs updates through the transform and checks that
// full-document updates carry a document.
func (e *env) transformUpdates(p *instance, when string, ups []sdk.Update) []sdk.UpdatesBatch {
	e.t.Helper()
	ns := e.h.Transform.Namespace
	out, err := p.T.TransformUpdates(e.ctx, ns, ups)
	if err != nil {
		e.t.Fatalf("Transform(%q, %d updates), %s: %s%s", ns, len(ups), when, describeErr(err), e.log.tailNote())
	}
	lim := newLimiter(e.t, "malformed updates")
	for i, b := range out {
		for j, u := range b.Updates {
			if (u.Type == sdk.UpdateInsert || u.Type == sdk.UpdateReplace) && len(u.Doc) == 0 {
				lim.errorf("Transform(%q), %s: update %d of output batch %d is a %s of _id %s without a document", ns, when, j, i, u.Type, idString(u.ID))
			}
		}
	}
	lim.done()
	return out
}

func sameUpdatesBatches(a, b []sdk.UpdatesBatch) string {
	if len(a) != len(b) {
		return fmt.Sprintf("%d output batches, then %d", len(a), len(b))
	}
	for i := range a {
		if a[i].Namespace != b[i].Namespace {
			return fmt.Sprintf("batch %d is for namespace %q, then %q", i, a[i].Namespace, b[i].Namespace)
		}
		if len(a[i].Updates) != len(b[i].Updates) {
			return fmt.Sprintf("batch %d holds %d updates, then %d", i, len(a[i].Updates), len(b[i].Updates))
		}
		for j := range a[i].Updates {
			x, y := a[i].Updates[j], b[i].Updates[j]
			switch {
			case x.Type != y.Type || !bytes.Equal(x.ID.Value, y.ID.Value) || x.ID.Type != y.ID.Type || !slices.Equal(x.Unset, y.Unset):
				return fmt.Sprintf("update %d of batch %d is %s, then %s", j, i,
					streamEvent{ns: a[i].Namespace, up: x}, streamEvent{ns: b[i].Namespace, up: y})
			case !bytes.Equal(x.Doc, y.Doc):
				return fmt.Sprintf("update %d of batch %d (%s of _id %s): %s", j, i, x.Type, idString(x.ID), docDiff(x.Doc, y.Doc))
			}
		}
	}
	return ""
}

// caseTransformUpdates: the same updates give the same output, also after
// a restart, and the updates of each id keep their order within a
// namespace.
func caseTransformUpdates(e *env) {
	t := e.t
	th := e.h.Transform
	ups := sampleUpdates(th.Docs)
	p := e.startTransform()
	// A transform that needs whole documents (a filter on a field, say) may
	// refuse partial updates with FAILED_PRECONDITION, which stops a run
	// with its message; check the other changes then.
	if _, err := p.T.TransformUpdates(e.ctx, th.Namespace, ups); sdk.KindOf(err) == sdk.KindFailedPrecondition {
		t.Logf("Transform refuses the partial updates (%s): checking inserts, replaces and deletes only", describeErr(err))
		ups = slices.DeleteFunc(ups, func(u sdk.Update) bool { return u.Type == sdk.UpdatePartial })
	}
	first := e.transformUpdates(p, "first call", ups)
	second := e.transformUpdates(p, "second call", ups)
	if d := sameUpdatesBatches(first, second); d != "" {
		t.Errorf("Transform is not deterministic: the same %d updates transformed twice by one process differ: %s", len(ups), d)
	}
	p2 := e.restartTransform(p)
	third := e.transformUpdates(p2, "after a restart", ups)
	if d := sameUpdatesBatches(first, third); d != "" {
		t.Errorf("Transform is not deterministic: the same %d updates transformed before and after a restart differ: %s", len(ups), d)
	}

	// Per namespace and id, the output types must be a subsequence of the
	// input types: updates may be dropped, not reordered.
	in := map[string][]sdk.UpdateType{}
	for _, u := range ups {
		in[idKey(u.ID)] = append(in[idKey(u.ID)], u.Type)
	}
	type nsID struct{ ns, id string }
	got := map[nsID][]sdk.UpdateType{}
	ids := map[nsID]bson.RawValue{}
	var order []nsID
	n := 0
	for _, b := range first {
		for _, u := range b.Updates {
			k := nsID{b.Namespace, idKey(u.ID)}
			if _, ok := got[k]; !ok {
				order = append(order, k)
				ids[k] = u.ID
			}
			got[k] = append(got[k], u.Type)
			n++
		}
	}
	lim := newLimiter(t, "ids whose updates are out of order")
	for _, k := range order {
		want, known := in[k.id]
		if !known {
			continue
		}
		if !isSubsequence(got[k], want) {
			lim.errorf("namespace %q: the updates of _id %s come out as %s after going in as %s: within a namespace the order of updates must be kept", k.ns, idString(ids[k]), typesString(got[k]), typesString(want))
		}
	}
	lim.done()
	t.Logf("%d updates in, %d out in %d batches", len(ups), n, len(first))
}

func isSubsequence(sub, seq []sdk.UpdateType) bool {
	i := 0
	for _, x := range seq {
		if i < len(sub) && sub[i] == x {
			i++
		}
	}
	return i == len(sub)
}

func typesString(ts []sdk.UpdateType) string {
	s := make([]string, len(ts))
	for i, x := range ts {
		s[i] = x.String()
	}
	return "[" + strings.Join(s, " ") + "]"
}

// caseTransformErrorClass: malformed input is rejected with
// INVALID_ARGUMENT (shown to the user, never retried), and the plugin keeps
// working.
func caseTransformErrorClass(e *env) {
	t := e.t
	th := e.h.Transform
	p := e.startTransform()
	acc, _ := e.transformInfo(p, "after Configure")
	dt := hostType(acc)
	good := encode(t, th.Docs[0], dt)
	goodID, _ := docID(th.Docs[0])
	id, err := wire.EncodeID(goodID, sdkType(dt))
	if err != nil {
		t.Fatalf("encode _id %s: %v", idString(goodID), err)
	}
	bad := []byte(`{"_id": `)
	if dt == dsyncv1.DataType_DATA_TYPE_BSON {
		bad = []byte{0x20, 0, 0, 0, 0x02, '_', 'i', 'd', 0}
	}
	type check struct {
		what string
		req  *dsyncv1.TransformRequest
	}
	checks := []check{
		{"a malformed " + dt.String() + " document", &dsyncv1.TransformRequest{Data: [][]byte{good, bad}}},
		{"an update with a malformed " + dt.String() + " id", &dsyncv1.TransformRequest{
			Updates: []*dsyncv1.Update{{Id: bad, Type: dsyncv1.UpdateType_UPDATE_TYPE_UPDATE, Data: good}},
		}},
		{"an update with a malformed " + dt.String() + " document", &dsyncv1.TransformRequest{
			Updates: []*dsyncv1.Update{{Id: id, Type: dsyncv1.UpdateType_UPDATE_TYPE_UPDATE, Data: bad}},
		}},
		{"data type 99, which protocol v1 does not define", &dsyncv1.TransformRequest{
			Data: [][]byte{good}, DataType: 99, OutputDataType: 99,
		}},
	}
	for _, other := range knownTypes {
		if !slices.Contains(acc, other) {
			checks = append(checks, check{"a document in " + other.String() + ", which GetTransformInfo does not list as accepted",
				&dsyncv1.TransformRequest{Data: [][]byte{encode(t, th.Docs[0], other)}, DataType: other, OutputDataType: other}})
		}
	}
	for _, c := range checks {
		c.req.Namespace = th.Namespace
		if c.req.DataType == dsyncv1.DataType_DATA_TYPE_UNSPECIFIED {
			c.req.DataType, c.req.OutputDataType = dt, dt
		}
		_, err := p.rawT.Transform(e.ctx, c.req)
		err = wire.FromStatus(err)
		switch {
		case err == nil:
			t.Errorf("Transform of %s succeeded; it must fail with INVALID_ARGUMENT", c.what)
		case wire.Code(err) != codes.InvalidArgument || sdk.KindOf(err) != sdk.KindInvalidArgument:
			hint := ""
			switch {
			case sdk.IsRetryable(err):
				hint = ": dsync would retry it, and it would fail again the same way"
			case wire.Code(err) == codes.Internal || wire.Code(err) == codes.Unknown:
				hint = ": bad input is the caller's error, not an internal one"
			}
			t.Errorf("Transform of %s: got %s; want gRPC INVALID_ARGUMENT (kind %q)%s", c.what, describeErr(err), sdk.KindInvalidArgument, hint)
		}
	}
	if _, err := p.T.TransformData(e.ctx, th.Namespace, th.Docs[:1]); err != nil {
		t.Errorf("Transform of a good document after the malformed requests: %s; the plugin must keep working%s", describeErr(err), e.log.tailNote())
	}
}
