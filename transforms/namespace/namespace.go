package namespace

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
	"github.com/dsyncio/dsync/transforms/internal/xform"
)

const name = "namespace"

// Namespace is the namespace transform.
type Namespace struct {
	cur xform.Configured[*rules]
}

var _ sdk.Transform = (*Namespace)(nil)

// New returns an unconfigured namespace transform.
func New() sdk.Transform { return &Namespace{} }

type rules struct {
	namespaces map[string]string // db.coll -> db.coll
	databases  map[string]string // db -> db
}

// Map returns the new name of namespace ns.
func (r *rules) Map(ns string) string {
	if to, ok := r.namespaces[ns]; ok {
		return to
	}
	db, coll, ok := strings.Cut(ns, ".")
	if !ok {
		return ns
	}
	if to, ok := r.databases[db]; ok {
		return to + "." + coll
	}
	return ns
}

func checkName(entry, s string, namespace bool) error {
	switch {
	case s == "":
		return fmt.Errorf("entry %q has an empty side: write FROM=TO", entry)
	case strings.ContainsAny(s, " \t\x00$/\\\""):
		return fmt.Errorf("entry %q: %q holds a character namespaces cannot have (space, NUL, $, /, \\ or \")", entry, s)
	}
	if !namespace {
		return nil
	}
	db, coll, _ := strings.Cut(s, ".")
	if db == "" || coll == "" {
		return fmt.Errorf("entry %q: %q needs a database and a collection, as db.coll", entry, s)
	}
	return nil
}

func parse(spec string) (*rules, error) {
	entries, err := xform.List(spec)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, errors.New("no rules given: write namespace:FROM=TO[,FROM=TO...], e.g. namespace:shop.users=staging.customers or namespace:shop=staging")
	}
	r := &rules{namespaces: map[string]string{}, databases: map[string]string{}}
	targets := map[string]string{}
	for _, e := range entries {
		from, to, ok := xform.Assignment(e)
		if !ok {
			return nil, fmt.Errorf("entry %q has no '=': write FROM=TO, e.g. shop.users=staging.customers", e)
		}
		isNS := strings.Contains(from, ".")
		if isNS != strings.Contains(to, ".") {
			return nil, fmt.Errorf("entry %q maps a namespace to a database or the reverse: write db.coll=db2.coll2 or db=db2", e)
		}
		if err := checkName(e, from, isNS); err != nil {
			return nil, err
		}
		if err := checkName(e, to, isNS); err != nil {
			return nil, err
		}
		m := r.databases
		if isNS {
			m = r.namespaces
		}
		if _, dup := m[from]; dup {
			return nil, fmt.Errorf("%q is renamed twice", from)
		}
		if prev, dup := targets[to]; dup {
			return nil, fmt.Errorf("entries %q and %q both map to %q", prev, e, to)
		}
		m[from] = to
		targets[to] = e
	}
	return r, nil
}

// Configure parses the rules.
func (n *Namespace) Configure(_ context.Context, spec string) error {
	r, err := parse(spec)
	if err != nil {
		return xform.SpecError(name, err)
	}
	n.cur.Store(r)
	return nil
}

// TransformData returns docs under the namespace's new name.
func (n *Namespace) TransformData(_ context.Context, ns string, docs []bson.Raw) ([]sdk.DataBatch, error) {
	r, err := n.cur.Load()
	if err != nil {
		return nil, err
	}
	return []sdk.DataBatch{{Namespace: r.Map(ns), Docs: docs}}, nil
}

// TransformUpdates returns ups under the namespace's new name.
func (n *Namespace) TransformUpdates(_ context.Context, ns string, ups []sdk.Update) ([]sdk.UpdatesBatch, error) {
	r, err := n.cur.Load()
	if err != nil {
		return nil, err
	}
	return []sdk.UpdatesBatch{{Namespace: r.Map(ns), Updates: ups}}, nil
}
