package mongodb

import (
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

	"github.com/dsyncio/dsync/sdk"
)

type opKind int

const (
	opReplace opKind = iota // ReplaceOne with upsert
	opDelete                // DeleteOne
	opUpdate                // UpdateOne {$set, $unset} with upsert
)

// writeOp is one write of one _id.
type writeOp struct {
	kind opKind
	id   bson.RawValue
	doc  bson.Raw // opReplace
	// set holds (path, value) pairs in order; unset the removed paths
	// (opUpdate). A path is in at most one of them.
	set   []bson.RawElement
	unset []string
}

func (o writeOp) model() mongo.WriteModel {
	switch o.kind {
	case opReplace:
		return mongo.NewReplaceOneModel().SetFilter(idFilter(o.id)).SetReplacement(o.doc).SetUpsert(true)
	case opDelete:
		return mongo.NewDeleteOneModel().SetFilter(idFilter(o.id))
	}
	var upd bson.D
	if len(o.set) > 0 {
		set := make(bson.D, len(o.set))
		for i, e := range o.set {
			set[i] = bson.E{Key: e.Key(), Value: e.Value()}
		}
		upd = append(upd, bson.E{Key: "$set", Value: set})
	}
	if len(o.unset) > 0 {
		unset := make(bson.D, len(o.unset))
		for i, p := range o.unset {
			unset[i] = bson.E{Key: p, Value: ""}
		}
		upd = append(upd, bson.E{Key: "$unset", Value: unset})
	}
	if len(upd) == 0 {
		return nil
	}
	return mongo.NewUpdateOneModel().SetFilter(idFilter(o.id)).SetUpdate(upd).SetUpsert(true)
}

// idKey identifies an _id within a batch: its type and bytes.
func idKey(v bson.RawValue) string {
	return string(rune(v.Type)) + string(v.Value)
}

// compact reduces updates to rounds of at most one operation per _id;
// running the rounds in order gives the same result as running the updates
// one by one.
func compact(updates []sdk.Update) ([][]writeOp, error) {
	chains := map[string][]writeOp{}
	var order []string
	for i, u := range updates {
		if u.ID.Type == 0 {
			return nil, fmt.Errorf("update %d has no _id", i)
		}
		o, err := toOp(u)
		if err != nil {
			return nil, fmt.Errorf("update %d (_id %s): %w", i, u.ID, err)
		}
		k := idKey(u.ID)
		chain, seen := chains[k]
		if !seen {
			order = append(order, k)
		}
		if n := len(chain); n > 0 {
			if m, ok := merge(chain[n-1], o); ok {
				chain[n-1] = m
				chains[k] = chain
				continue
			}
		}
		chains[k] = append(chain, o)
	}
	var rounds [][]writeOp
	for _, k := range order {
		for r, o := range chains[k] {
			if r == len(rounds) {
				rounds = append(rounds, nil)
			}
			rounds[r] = append(rounds[r], o)
		}
	}
	return rounds, nil
}

func toOp(u sdk.Update) (writeOp, error) {
	o := writeOp{id: u.ID}
	switch u.Type {
	case sdk.UpdateInsert, sdk.UpdateReplace:
		if len(u.Doc) == 0 {
			return o, fmt.Errorf("%s without a document", u.Type)
		}
		o.kind = opReplace
		o.doc = withID(u.Doc, u.ID)
	case sdk.UpdateDelete:
		o.kind = opDelete
	case sdk.UpdatePartial:
		o.kind = opUpdate
		if len(u.Doc) > 0 {
			elems, err := u.Doc.Elements()
			if err != nil {
				return o, fmt.Errorf("fields to set: %w", err)
			}
			for _, e := range elems {
				if e.Key() == "_id" {
					continue // immutable; equal to the filter
				}
				o.set = setPathIn(o.set, e)
			}
		}
		for _, p := range u.Unset {
			o.set = dropPath(o.set, p)
			o.unset = appendPath(o.unset, p)
		}
	default:
		return o, fmt.Errorf("unknown update type %d", u.Type)
	}
	return o, nil
}

// withID returns doc, adding _id first when it is missing.
func withID(doc bson.Raw, id bson.RawValue) bson.Raw {
	if _, err := doc.LookupErr("_id"); err == nil {
		return doc
	}
	idx, out := bsoncore.AppendDocumentStart(nil)
	out = bsoncore.AppendValueElement(out, "_id", bsoncore.Value{Type: bsoncore.Type(id.Type), Data: id.Value})
	elems, _ := doc.Elements()
	for _, e := range elems {
		out = append(out, e...)
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

func setPathIn(set []bson.RawElement, e bson.RawElement) []bson.RawElement {
	for i, s := range set {
		if s.Key() == e.Key() {
			set[i] = e
			return set
		}
	}
	return append(set, e)
}

func dropPath(set []bson.RawElement, p string) []bson.RawElement {
	out := set[:0]
	for _, s := range set {
		if s.Key() != p {
			out = append(out, s)
		}
	}
	return out
}

func appendPath(ps []string, p string) []string {
	for _, q := range ps {
		if q == p {
			return ps
		}
	}
	return append(ps, p)
}

// merge returns the single operation equivalent to prev then next, and
// false when there is none.
func merge(prev, next writeOp) (writeOp, bool) {
	if next.kind != opUpdate {
		return next, true
	}
	switch prev.kind {
	case opReplace:
		doc, err := applyPartial(prev.doc, next.set, next.unset)
		if err != nil {
			return writeOp{}, false
		}
		return writeOp{kind: opReplace, id: prev.id, doc: doc}, true
	case opDelete:
		// The upsert of next creates the document from its _id.
		base := withID(emptyDoc, prev.id)
		doc, err := applyPartial(base, next.set, next.unset)
		if err != nil {
			return writeOp{}, false
		}
		return writeOp{kind: opReplace, id: prev.id, doc: doc}, true
	}
	// Two partial updates merge when no path of one is a proper prefix of
	// a path of the other; equal paths: the later wins.
	for _, p := range prev.paths() {
		for _, q := range next.paths() {
			if p != q && (isPrefix(p, q) || isPrefix(q, p)) {
				return writeOp{}, false
			}
		}
	}
	out := writeOp{kind: opUpdate, id: prev.id}
	out.set = append(out.set, prev.set...)
	out.unset = append(out.unset, prev.unset...)
	for _, e := range next.set {
		out.unset = removeString(out.unset, e.Key())
		out.set = setPathIn(out.set, e)
	}
	for _, p := range next.unset {
		out.set = dropPath(out.set, p)
		out.unset = appendPath(out.unset, p)
	}
	return out, true
}

var emptyDoc = bson.Raw{5, 0, 0, 0, 0}

func (o writeOp) paths() []string {
	ps := make([]string, 0, len(o.set)+len(o.unset))
	for _, e := range o.set {
		ps = append(ps, e.Key())
	}
	return append(ps, o.unset...)
}

func isPrefix(p, q string) bool { return strings.HasPrefix(q, p+".") }

func removeString(ss []string, s string) []string {
	out := ss[:0]
	for _, x := range ss {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

// errNeedsServer is returned by applyPartial for updates it does not model
// (paths through arrays); the server applies those.
var errNeedsServer = errors.New("update needs the server")

// applyPartial applies $set and $unset to doc as MongoDB does for paths
// through documents: missing sub-documents are created, a new field is
// appended and an existing one keeps its place; $unset of a missing path is
// a no-op.
func applyPartial(doc bson.Raw, set []bson.RawElement, unset []string) (bson.Raw, error) {
	var err error
	for _, e := range set {
		doc, err = setPath(doc, strings.Split(e.Key(), "."), e.Value())
		if err != nil {
			return nil, err
		}
	}
	for _, p := range unset {
		doc, err = unsetPath(doc, strings.Split(p, "."))
		if err != nil {
			return nil, err
		}
	}
	return doc, nil
}

func setPath(doc bson.Raw, path []string, v bson.RawValue) (bson.Raw, error) {
	elems, err := doc.Elements()
	if err != nil {
		return nil, err
	}
	idx, out := bsoncore.AppendDocumentStart(nil)
	found := false
	for _, el := range elems {
		if found || el.Key() != path[0] {
			out = append(out, el...)
			continue
		}
		found = true
		if len(path) == 1 {
			out = appendRaw(out, path[0], v)
			continue
		}
		sub, ok := el.Value().DocumentOK()
		if !ok {
			return nil, errNeedsServer
		}
		sub, err := setPath(sub, path[1:], v)
		if err != nil {
			return nil, err
		}
		out = appendRaw(out, path[0], bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: sub})
	}
	if !found {
		if len(path) == 1 {
			out = appendRaw(out, path[0], v)
		} else {
			sub, err := setPath(emptyDoc, path[1:], v)
			if err != nil {
				return nil, err
			}
			out = appendRaw(out, path[0], bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: sub})
		}
	}
	out, err = bsoncore.AppendDocumentEnd(out, idx)
	return out, err
}

func unsetPath(doc bson.Raw, path []string) (bson.Raw, error) {
	elems, err := doc.Elements()
	if err != nil {
		return nil, err
	}
	idx, out := bsoncore.AppendDocumentStart(nil)
	for _, el := range elems {
		if el.Key() != path[0] {
			out = append(out, el...)
			continue
		}
		if len(path) == 1 {
			continue
		}
		v := el.Value()
		if v.Type == bson.TypeArray {
			return nil, errNeedsServer
		}
		sub, ok := v.DocumentOK()
		if !ok {
			out = append(out, el...)
			continue
		}
		sub, err := unsetPath(sub, path[1:])
		if err != nil {
			return nil, err
		}
		out = appendRaw(out, path[0], bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: sub})
	}
	out, err = bsoncore.AppendDocumentEnd(out, idx)
	return out, err
}

func appendRaw(dst []byte, key string, v bson.RawValue) []byte {
	return bsoncore.AppendValueElement(dst, key, bsoncore.Value{Type: bsoncore.Type(v.Type), Data: v.Value})
}
