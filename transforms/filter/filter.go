package filter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
	"github.com/dsyncio/dsync/transforms/internal/fieldpath"
	"github.com/dsyncio/dsync/transforms/internal/rawdoc"
	"github.com/dsyncio/dsync/transforms/internal/xform"
)

const name = "filter"

// Filter is the filter transform.
type Filter struct {
	cur xform.Configured[*query]
}

var _ sdk.Transform = (*Filter)(nil)

// New returns an unconfigured filter transform.
func New() sdk.Transform { return &Filter{} }

// query is a compiled filter.
type query struct {
	expr  expr
	paths []fieldpath.Path
	// idOnly: the query reads nothing but _id.
	idOnly bool
}

func parse(spec string) (*query, error) {
	s := strings.TrimSpace(spec)
	if s == "" {
		return nil, errors.New(`no query given: write filter:QUERY, e.g. filter:{"status":"active"}`)
	}
	if !strings.HasPrefix(s, "{") {
		return nil, errors.New(`the query must be a JSON document, e.g. filter:{"status":"active"}`)
	}
	var doc bson.Raw
	if err := bson.UnmarshalExtJSON([]byte(s), false, &doc); err != nil {
		return nil, fmt.Errorf("the query is not valid Extended JSON: %v", err)
	}
	q := &query{}
	var err error
	if q.expr, err = compile(doc, &q.paths); err != nil {
		return nil, err
	}
	q.idOnly = true
	for _, p := range q.paths {
		q.idOnly = q.idOnly && p.IsID()
	}
	return q, nil
}

// Configure parses the query.
func (f *Filter) Configure(_ context.Context, spec string) error {
	q, err := parse(spec)
	if err != nil {
		return xform.SpecError(name, err)
	}
	f.cur.Store(q)
	return nil
}

// TransformData passes the matching documents.
func (f *Filter) TransformData(ctx context.Context, ns string, docs []bson.Raw) ([]sdk.DataBatch, error) {
	q, err := f.cur.Load()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]bson.Raw, 0, len(docs))
	for _, d := range docs {
		if q.expr.match(d) {
			out = append(out, d)
		}
	}
	return []sdk.DataBatch{{Namespace: ns, Docs: out}}, nil
}

// TransformUpdates keeps the sink equal to the matching documents; see the
// package documentation.
func (f *Filter) TransformUpdates(ctx context.Context, ns string, ups []sdk.Update) ([]sdk.UpdatesBatch, error) {
	q, err := f.cur.Load()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]sdk.Update, 0, len(ups))
	for _, u := range ups {
		c := xform.Call{Namespace: ns, ID: u.ID}
		if q.idOnly {
			if q.matchID(u.ID) {
				out = append(out, u)
			}
			continue
		}
		switch u.Type {
		case sdk.UpdateInsert, sdk.UpdateReplace:
			if u.Doc == nil {
				return nil, xform.DocError(name, &c, fmt.Errorf("%s without a document", u.Type))
			}
			if q.expr.match(u.Doc) {
				out = append(out, u)
			} else {
				out = append(out, sdk.Update{ID: u.ID, Type: sdk.UpdateDelete})
			}
		case sdk.UpdateDelete:
			out = append(out, u)
		case sdk.UpdatePartial:
			del, err := q.partial(u)
			if err != nil {
				return nil, xform.DocError(name, &c, err)
			}
			if del {
				out = append(out, sdk.Update{ID: u.ID, Type: sdk.UpdateDelete})
			}
		default:
			return nil, xform.DocError(name, &c, fmt.Errorf("unknown update type %d", u.Type))
		}
	}
	return []sdk.UpdatesBatch{{Namespace: ns, Updates: out}}, nil
}

// reads reports whether k is a path the query reads or an ancestor of one.
func (q *query) reads(k fieldpath.Path) bool {
	for _, p := range q.paths {
		if p.HasPrefix(k) {
			return true
		}
	}
	return false
}

func (q *query) matchID(id bson.RawValue) bool {
	b := rawdoc.NewBuilder(16 + len(id.Value))
	b.Append("_id", id)
	return q.expr.match(b.Build())
}

// partial decides a partial update: it becomes a delete when it determines
// every field the query reads and the result does not match; otherwise
// the update cannot be decided and is an error.
func (q *query) partial(u sdk.Update) (bool, error) {
	els, err := xform.Elements(u.Doc)
	if err != nil {
		return false, err
	}
	determined := func(p fieldpath.Path) bool {
		if p.IsID() {
			return true
		}
		hit := false
		for _, e := range els {
			k := fieldpath.Split(e.Key())
			if k.HasPrefix(p) && len(k) > len(p) {
				return false // changes part of p only
			}
			hit = hit || p.HasPrefix(k)
		}
		for _, un := range u.Unset {
			k := fieldpath.Split(un)
			if k.HasPrefix(p) && len(k) > len(p) {
				return false
			}
			hit = hit || p.HasPrefix(k)
		}
		return hit
	}
	all := true
	for _, p := range q.paths {
		all = all && determined(p)
	}
	if all {
		// The values the query reads, as the update leaves them.
		img := rawdoc.NewBuilder(16 + len(u.ID.Value))
		img.Append("_id", u.ID)
		doc := img.Build()
		for _, e := range els {
			k := fieldpath.Split(e.Key())
			if k.IsID() || !q.reads(k) {
				continue
			}
			if doc, err = rawdoc.Set(doc, k, e.Value(), rawdoc.Last); err != nil {
				return false, fmt.Errorf("partial update field %q: %w", e.Key(), err)
			}
		}
		if !q.expr.match(doc) {
			return true, nil
		}
	}
	var read []string
	for _, p := range q.paths {
		if !slices.Contains(read, p.String()) {
			read = append(read, p.String())
		}
	}
	return false, sdk.FailedPrecondition(fmt.Errorf("cannot decide a partial update without the full document "+
		"(the query reads %s; the update may concern a document the sink does not hold, or one that stops matching): "+
		"use filter with a source that sends full documents for updates, or filter on _id only", strings.Join(read, ", ")))
}
