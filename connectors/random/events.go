package random

import (
	"encoding/binary"
	"fmt"
	"iter"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
)

// eventBlock is the length of the runs of consecutive events that belong to
// one namespace.
const eventBlock = 64

// Event mix, in percent: new ids are inserted, existing ones replaced,
// partially updated or deleted, deleted ones inserted again.
const (
	pctInsertNew = 20
	pctReplace   = 30
	pctPartial   = 35
	// The rest are deletes.
)

// eventNS returns the namespace index of event seq. It depends only on the
// seed and seq, so a stream can be filtered and counted without replaying it.
func (o Options) eventNS(seq int64) int {
	if o.Namespaces == 1 {
		return 0
	}
	return int(hash3(o.Seed, domainEventNS, uint64(seq/eventBlock), 0, 0) % uint64(o.Namespaces))
}

// event is the identity of one change; its documents are derived from it on
// demand.
type event struct {
	seq int64
	ns  int
	id  int64
	typ sdk.UpdateType
	h   uint64
}

// eventGen replays the event sequence. Which id an event touches and whether
// it is an insert depends on the documents that exist at that point, so a
// position is reached by replaying ids and types (no documents), which is
// cheap; the memory it takes grows with the number of deleted ids.
type eventGen struct {
	o       Options
	seq     int64
	next    []int64 // per namespace: the lowest id never inserted
	deleted []map[int64]struct{}
}

func newEventGen(o Options) *eventGen {
	g := &eventGen{o: o, next: make([]int64, o.Namespaces), deleted: make([]map[int64]struct{}, o.Namespaces)}
	for ns := range g.next {
		g.next[ns] = o.Docs
		g.deleted[ns] = make(map[int64]struct{})
	}
	return g
}

// skipTo replays the events before seq.
func (g *eventGen) skipTo(seq int64) {
	for g.seq < seq {
		g.step()
	}
}

// step returns event g.seq and moves past it.
func (g *eventGen) step() event {
	e := event{seq: g.seq, ns: g.o.eventNS(g.seq)}
	g.seq++
	e.h = hash3(g.o.Seed, domainEvent, uint64(e.seq), 0, 0)
	r := e.h % 100
	n := g.next[e.ns]
	if r < pctInsertNew || n == 0 {
		e.id, e.typ = n, sdk.UpdateInsert
		g.next[e.ns]++
		return e
	}
	e.id = int64(mix(e.h+golden) % uint64(n))
	deleted := g.deleted[e.ns]
	if _, ok := deleted[e.id]; ok {
		delete(deleted, e.id)
		e.typ = sdk.UpdateInsert
		return e
	}
	switch {
	case r < pctInsertNew+pctReplace:
		e.typ = sdk.UpdateReplace
	case r < pctInsertNew+pctReplace+pctPartial:
		e.typ = sdk.UpdatePartial
	default:
		e.typ = sdk.UpdateDelete
		deleted[e.id] = struct{}{}
	}
	return e
}

// update builds the sdk.Update of e.
func (o Options) update(e event) sdk.Update {
	u := sdk.Update{ID: int64Value(e.id), Type: e.typ}
	switch e.typ {
	case sdk.UpdateInsert, sdk.UpdateReplace:
		u.Doc = o.docVersion(e.ns, e.id, e.seq+1)
	case sdk.UpdatePartial:
		u.Doc, u.Unset = o.partial(e)
	}
	return u
}

// partial returns the fields to set and to unset of a partial update. The
// variants cover top-level and dotted paths, creating a sub-document,
// removing fields and adding a removed field back (at the end).
func (o Options) partial(e event) (bson.Raw, []string) {
	h := mix(e.h ^ domainDoc)
	d := []byte{0, 0, 0, 0}
	d = appendInt64(d, "v", e.seq+1)
	var unset []string
	switch (e.h >> 40) % 3 {
	case 0:
		d = appendDouble(d, "f", unitFloat(h)*1000)
		d = appendInt64(d, "sub.a", int64(h>>1))
	case 1:
		d = appendString(d, "tag", tagValue(h))
		d = appendInt64(d, "meta.seq", e.seq)
	case 2:
		unset = []string{"tag", "sub.b"}
	}
	return bson.Raw(endDoc(d, 0)), unset
}

func int64Value(i int64) bson.RawValue {
	return bson.RawValue{Type: bson.TypeInt64, Value: binary.LittleEndian.AppendUint64(nil, uint64(i))}
}

// Event is one change of the update stream.
type Event struct {
	// Seq is the position of the event: the stream cursor after it is Seq+1.
	Seq       int64
	Namespace string
	Update    sdk.Update
}

// Events returns the change events from position from to the end (Updates),
// as StreamUpdates produces them.
func (o Options) Events(from int64) iter.Seq[Event] {
	return func(yield func(Event) bool) {
		g := newEventGen(o)
		g.skipTo(from)
		for g.seq < o.Updates {
			e := g.step()
			if !yield(Event{Seq: e.seq, Namespace: o.NamespaceName(e.ns), Update: o.update(e)}) {
				return
			}
		}
	}
}

// State is a set of documents by namespace and int64 _id, for tests that
// compute what a sink must hold.
type State map[string]map[int64]bson.Raw

// InitialState returns every document before any change event.
func (o Options) InitialState() State {
	s := make(State, o.Namespaces)
	for ns := range o.Namespaces {
		docs := make(map[int64]bson.Raw, o.Docs)
		for i := range o.Docs {
			docs[i] = o.Doc(ns, i)
		}
		s[o.NamespaceName(ns)] = docs
	}
	return s
}

// ExpectedState returns the documents after every change event.
func (o Options) ExpectedState() (State, error) {
	s := o.InitialState()
	for e := range o.Events(0) {
		if err := s.Apply(e.Namespace, e.Update); err != nil {
			return nil, fmt.Errorf("event %d: %w", e.Seq, err)
		}
	}
	return s, nil
}

// Apply applies u to namespace ns with the semantics of MongoDB: a replace
// or insert stores Doc, a delete of a missing id is a no-op, a partial update
// sets Doc's fields (dotted paths into sub-documents, created when missing;
// new fields go last, existing ones keep their place) and removes Unset. A
// partial update of a missing id is an error. _id must be an int32 or int64.
func (s State) Apply(ns string, u sdk.Update) error {
	id, ok := idOf(u.ID)
	if !ok {
		return fmt.Errorf("random: _id of type %s is not an integer", u.ID.Type)
	}
	docs := s[ns]
	if docs == nil {
		docs = make(map[int64]bson.Raw)
		s[ns] = docs
	}
	switch u.Type {
	case sdk.UpdateInsert, sdk.UpdateReplace:
		if u.Doc == nil {
			return fmt.Errorf("random: %s of _id %d without a document", u.Type, id)
		}
		docs[id] = bson.Raw(append([]byte(nil), u.Doc...))
	case sdk.UpdateDelete:
		delete(docs, id)
	case sdk.UpdatePartial:
		doc, ok := docs[id]
		if !ok {
			return fmt.Errorf("random: partial update of missing _id %d", id)
		}
		doc, err := ApplyPartial(doc, u.Doc, u.Unset)
		if err != nil {
			return fmt.Errorf("random: _id %d: %w", id, err)
		}
		docs[id] = doc
	default:
		return fmt.Errorf("random: update type %d of _id %d is unknown", u.Type, id)
	}
	return nil
}

// ApplyPartial returns doc with the fields of set set and the fields of unset
// removed, as MongoDB's $set and $unset do: keys may be dotted paths into
// sub-documents, missing sub-documents are created, a new field is appended
// and an existing one keeps its position. Paths through arrays are not
// supported.
func ApplyPartial(doc, set bson.Raw, unset []string) (bson.Raw, error) {
	if len(set) > 0 {
		elems, err := set.Elements()
		if err != nil {
			return nil, fmt.Errorf("fields to set: %w", err)
		}
		for _, el := range elems {
			doc, err = setPath(doc, el.Key(), strings.Split(el.Key(), "."), el.Value())
			if err != nil {
				return nil, err
			}
		}
	}
	for _, path := range unset {
		var err error
		doc, err = unsetPath(doc, strings.Split(path, "."))
		if err != nil {
			return nil, err
		}
	}
	return doc, nil
}

func setPath(doc bson.Raw, full string, path []string, v bson.RawValue) (bson.Raw, error) {
	elems, err := doc.Elements()
	if err != nil {
		return nil, err
	}
	out := make([]byte, 4, len(doc)+len(full)+len(v.Value)+8)
	found := false
	for _, el := range elems {
		if found || el.Key() != path[0] {
			out = append(out, el...)
			continue
		}
		found = true
		if len(path) == 1 {
			out = appendValue(out, path[0], v.Type, v.Value)
			continue
		}
		cur := el.Value()
		sub, ok := cur.DocumentOK()
		if !ok {
			return nil, fmt.Errorf("cannot set %q: %q is a %s, not a document", full, path[0], cur.Type)
		}
		sub, err := setPath(sub, full, path[1:], v)
		if err != nil {
			return nil, err
		}
		out = appendValue(out, path[0], bson.TypeEmbeddedDocument, sub)
	}
	if !found {
		if len(path) == 1 {
			out = appendValue(out, path[0], v.Type, v.Value)
		} else {
			sub, err := setPath(bson.Raw{5, 0, 0, 0, 0}, full, path[1:], v)
			if err != nil {
				return nil, err
			}
			out = appendValue(out, path[0], bson.TypeEmbeddedDocument, sub)
		}
	}
	return bson.Raw(endDoc(out, 0)), nil
}

func unsetPath(doc bson.Raw, path []string) (bson.Raw, error) {
	elems, err := doc.Elements()
	if err != nil {
		return nil, err
	}
	out := make([]byte, 4, len(doc))
	for _, el := range elems {
		if el.Key() != path[0] {
			out = append(out, el...)
			continue
		}
		if len(path) == 1 {
			continue
		}
		sub, ok := el.Value().DocumentOK()
		if !ok {
			out = append(out, el...) // MongoDB ignores a path through a scalar
			continue
		}
		sub, err := unsetPath(sub, path[1:])
		if err != nil {
			return nil, err
		}
		out = appendValue(out, path[0], bson.TypeEmbeddedDocument, sub)
	}
	return bson.Raw(endDoc(out, 0)), nil
}

func appendValue(dst []byte, key string, t bson.Type, v []byte) []byte {
	return append(appendKey(dst, t, key), v...)
}

// idOf returns an integer _id.
func idOf(v bson.RawValue) (int64, bool) {
	switch v.Type {
	case bson.TypeInt64:
		return v.Int64OK()
	case bson.TypeInt32:
		i, ok := v.Int32OK()
		return int64(i), ok
	}
	return 0, false
}
