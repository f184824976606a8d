// Package xform holds what the built-in transforms share: the adapter from
// a per-document [Rewriter] to sdk.Transform, the spec grammar helpers and
// the error conventions.
//
// Spec errors are sdk.InvalidArgument errors of one line that start with
// the transform's name, say what is wrong and how to write it instead.
// Errors met while transforming name the transform, the namespace and the
// document's _id and are fatal unless marked otherwise.
package xform

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
	"github.com/dsyncio/dsync/transforms/internal/rawdoc"
)

// Call is what a Rewriter knows about the document or update at hand.
type Call struct {
	// Namespace is the namespace the transform was called with.
	Namespace string
	// ID is the document's _id.
	ID bson.RawValue
	// Now is the time of the TransformData or TransformUpdates call, the
	// same for every document of the call.
	Now time.Time
}

// Rewriter rewrites documents and partial updates for a configured
// transform. It is immutable and safe for concurrent use.
type Rewriter interface {
	// Doc returns the new document for a copied, inserted or replacing
	// document.
	Doc(c *Call, doc bson.Raw) (bson.Raw, error)
	// Partial returns the new fields to set and paths to unset of a
	// partial update. When both are empty the update is dropped: it would
	// change nothing.
	Partial(c *Call, set bson.Raw, unset []string) (bson.Raw, []string, error)
}

// Parser parses a spec. Its error explains the problem in one line without
// the transform's name, which Configure adds.
type Parser func(spec string) (Rewriter, error)

// Transform implements sdk.Transform for transforms that rewrite each
// document and each update on its own and keep the namespace: copied,
// inserted and replacing documents go through Rewriter.Doc, partial updates
// through Rewriter.Partial, deletes pass unchanged.
type Transform struct {
	name  string
	parse Parser
	now   func() time.Time
	cur   Configured[Rewriter]
}

var _ sdk.Transform = (*Transform)(nil)

// New returns an unconfigured transform named name.
func New(name string, parse Parser) *Transform {
	return &Transform{name: name, parse: parse, now: time.Now}
}

// WithClock makes the transform read the time from now (tests).
func (t *Transform) WithClock(now func() time.Time) *Transform {
	t.now = now
	return t
}

// Configure parses spec.
func (t *Transform) Configure(_ context.Context, spec string) error {
	r, err := t.parse(spec)
	if err != nil {
		return SpecError(t.name, err)
	}
	t.cur.Store(r)
	return nil
}

// TransformData rewrites each document.
func (t *Transform) TransformData(ctx context.Context, ns string, docs []bson.Raw) ([]sdk.DataBatch, error) {
	r, err := t.cur.Load()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := Call{Namespace: ns, Now: t.now()}
	out := make([]bson.Raw, 0, len(docs))
	for _, d := range docs {
		id, ok := rawdoc.ID(d)
		if !ok {
			return nil, sdk.Fatal(fmt.Errorf("%s: namespace %q: a document has no _id", t.name, ns))
		}
		c.ID = id
		nd, err := r.Doc(&c, d)
		if err != nil {
			return nil, DocError(t.name, &c, err)
		}
		out = append(out, nd)
	}
	return []sdk.DataBatch{{Namespace: ns, Docs: out}}, nil
}

// TransformUpdates rewrites each update, keeping their order.
func (t *Transform) TransformUpdates(ctx context.Context, ns string, ups []sdk.Update) ([]sdk.UpdatesBatch, error) {
	r, err := t.cur.Load()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := Call{Namespace: ns, Now: t.now()}
	out := make([]sdk.Update, 0, len(ups))
	for _, u := range ups {
		c.ID = u.ID
		switch u.Type {
		case sdk.UpdateInsert, sdk.UpdateReplace:
			if u.Doc == nil {
				return nil, DocError(t.name, &c, fmt.Errorf("%s without a document", u.Type))
			}
			nd, err := r.Doc(&c, u.Doc)
			if err != nil {
				return nil, DocError(t.name, &c, err)
			}
			out = append(out, sdk.Update{ID: u.ID, Type: u.Type, Doc: nd})
		case sdk.UpdateDelete:
			out = append(out, u)
		case sdk.UpdatePartial:
			set, unset, err := r.Partial(&c, u.Doc, u.Unset)
			if err != nil {
				return nil, DocError(t.name, &c, err)
			}
			if set == nil && unset == nil {
				continue
			}
			out = append(out, sdk.Update{ID: u.ID, Type: u.Type, Doc: set, Unset: unset})
		default:
			return nil, DocError(t.name, &c, fmt.Errorf("unknown update type %d", u.Type))
		}
	}
	return []sdk.UpdatesBatch{{Namespace: ns, Updates: out}}, nil
}

// Configured holds the configuration of a transform, set by Configure and
// read by concurrent calls.
type Configured[T any] struct{ p atomic.Pointer[T] }

// Store sets the configuration.
func (c *Configured[T]) Store(v T) { c.p.Store(&v) }

// Load returns the configuration, or a FailedPrecondition error wrapping
// sdk.ErrNotConfigured before Configure succeeded.
func (c *Configured[T]) Load() (T, error) {
	p := c.p.Load()
	if p == nil {
		var zero T
		return zero, sdk.FailedPrecondition(sdk.ErrNotConfigured)
	}
	return *p, nil
}

// SpecError turns a parse error into the InvalidArgument error Configure
// returns, prefixed with the transform's name.
func SpecError(name string, err error) error {
	return sdk.InvalidArgument("%s: %s", name, oneLine(err.Error()))
}

// DocError names the transform, namespace and _id of c in err, keeping its
// kind.
func DocError(name string, c *Call, err error) error {
	return fmt.Errorf("%s: namespace %q, _id %s: %w", name, c.Namespace, IDString(c.ID), err)
}

// IDString renders an _id for messages: integers in decimal, strings
// quoted, ObjectIDs as ObjectId("..."), other values as Extended JSON.
func IDString(id bson.RawValue) string {
	switch id.Type {
	case bson.TypeInt32:
		if v, ok := id.Int32OK(); ok {
			return strconv.FormatInt(int64(v), 10)
		}
	case bson.TypeInt64:
		if v, ok := id.Int64OK(); ok {
			return strconv.FormatInt(v, 10)
		}
	case bson.TypeString:
		if v, ok := id.StringValueOK(); ok {
			return strconv.Quote(v)
		}
	case bson.TypeObjectID:
		if v, ok := id.ObjectIDOK(); ok {
			return `ObjectId("` + v.Hex() + `")`
		}
	case 0:
		return "(none)"
	}
	return id.String()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Partial collects the fields to set and the paths to unset of a rewritten
// partial update, in order.
type Partial struct {
	set   *rawdoc.Builder
	sets  int
	unset []string
}

// NewPartial returns an empty Partial with room for about size bytes of
// fields to set.
func NewPartial(size int) *Partial { return &Partial{set: rawdoc.NewBuilder(size)} }

// Set adds a field to set.
func (p *Partial) Set(path string, v bson.RawValue) {
	p.set.Append(path, v)
	p.sets++
}

// SetElement adds a field to set as is.
func (p *Partial) SetElement(e bson.RawElement) {
	p.set.AppendElement(e)
	p.sets++
}

// Unset adds a path to unset.
func (p *Partial) Unset(path string) { p.unset = append(p.unset, path) }

// Result returns the fields to set, nil when none, and the paths to unset,
// nil when none.
func (p *Partial) Result() (bson.Raw, []string) {
	var set bson.Raw
	if p.sets > 0 {
		set = p.set.Build()
	}
	return set, p.unset
}

// Elements returns the fields of a partial update's set document; nil has
// none.
func Elements(set bson.Raw) ([]bson.RawElement, error) {
	if len(set) == 0 {
		return nil, nil
	}
	els, err := set.Elements()
	if err != nil {
		return nil, fmt.Errorf("fields to set: %w", err)
	}
	return els, nil
}

// List splits a comma-separated spec into its entries, trimmed of spaces.
// An empty spec has no entries; an empty entry is an error naming its
// position.
func List(spec string) ([]string, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, nil
	}
	parts := strings.Split(spec, ",")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(p)
		if parts[i] == "" {
			return nil, fmt.Errorf("entry %d of %q is empty", i+1, spec)
		}
	}
	return parts, nil
}

// Assignment splits an entry "LEFT=RIGHT", trimming spaces; ok is false
// without '='.
func Assignment(entry string) (left, right string, ok bool) {
	left, right, ok = strings.Cut(entry, "=")
	return strings.TrimSpace(left), strings.TrimSpace(right), ok
}
