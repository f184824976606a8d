package coordinator

import (
	"fmt"
	"slices"
	"strings"
)

// NamespaceMap selects the source namespaces of a flow and names their sink
// namespaces. A namespace is "db.collection": the database is the text before
// the first '.', so a collection name may itself contain dots. The zero value
// selects every namespace and maps each to itself.
//
// Entries, as given to [ParseNamespaceMap]:
//
//	a.b       copy only namespace a.b, to a.b
//	a.b:c.d   copy namespace a.b to c.d
//	a         copy every namespace of database a, keeping its name
//	a:c       copy every namespace a.X to c.X
//
// A namespace entry takes precedence over a database entry that also covers
// it, so "a:c" with "a.users:c.people" renames one collection of a renamed
// database.
type NamespaceMap struct {
	// rules are sorted by source; at most one rule per source.
	rules []nsRule
}

// nsRule maps a database (db) or a single namespace.
type nsRule struct {
	src, dst string
	db       bool
}

func (r nsRule) String() string {
	if r.src == r.dst {
		return r.src
	}
	return r.src + ":" + r.dst
}

// ParseNamespaceMap parses namespace mapping entries (see [NamespaceMap]).
// Surrounding spaces of an entry are ignored. It returns an error wrapping
// [ErrInvalidNamespaceMap], one line naming the offending entry, for an empty
// part, a namespace mapped to a database or the reverse, an entry given twice,
// two entries with the same target, or a namespace entry that a database entry
// already implies.
func ParseNamespaceMap(entries []string) (NamespaceMap, error) {
	var m NamespaceMap
	given := make(map[string]string) // source -> entry as given
	for _, raw := range entries {
		e := strings.TrimSpace(raw)
		r, err := parseNSRule(e)
		if err != nil {
			return NamespaceMap{}, fmt.Errorf("%w: %s", ErrInvalidNamespaceMap, err)
		}
		if prev, ok := given[r.src]; ok {
			if prev == e {
				return NamespaceMap{}, fmt.Errorf("%w: entry %q is given twice", ErrInvalidNamespaceMap, e)
			}
			return NamespaceMap{}, fmt.Errorf("%w: entries %q and %q both name source %q", ErrInvalidNamespaceMap, prev, e, r.src)
		}
		given[r.src] = e
		m.rules = append(m.rules, r)
	}
	slices.SortFunc(m.rules, func(a, b nsRule) int { return strings.Compare(a.src, b.src) })

	// Targets must be distinct among rules of the same level. Whether a
	// database rule produces the target of a namespace rule depends on the
	// source's namespaces: [NamespaceMap.Check] tells once they are known.
	nsTargets := make(map[string]nsRule)
	dbTargets := make(map[string]nsRule)
	for _, r := range m.rules {
		targets := nsTargets
		if r.db {
			targets = dbTargets
		}
		if prev, ok := targets[r.dst]; ok {
			return NamespaceMap{}, fmt.Errorf("%w: entries %q and %q both map to %q",
				ErrInvalidNamespaceMap, given[prev.src], given[r.src], r.dst)
		}
		targets[r.dst] = r
	}
	for _, r := range m.rules {
		if r.db {
			continue
		}
		srcDB, coll, _ := strings.Cut(r.src, ".")
		if d, ok := m.dbRule(srcDB); ok && d.dst+"."+coll == r.dst {
			return NamespaceMap{}, fmt.Errorf("%w: entry %q is already implied by %q",
				ErrInvalidNamespaceMap, given[r.src], given[d.src])
		}
	}
	return m, nil
}

// parseNSRule parses one entry.
func parseNSRule(e string) (nsRule, error) {
	if e == "" {
		return nsRule{}, fmt.Errorf("empty entry")
	}
	src, dst, renamed := strings.Cut(e, ":")
	if renamed && strings.Contains(dst, ":") {
		return nsRule{}, fmt.Errorf("entry %q has more than one ':'", e)
	}
	if src == "" {
		return nsRule{}, fmt.Errorf("entry %q has an empty source before ':'", e)
	}
	if renamed && dst == "" {
		return nsRule{}, fmt.Errorf("entry %q has an empty target after ':'", e)
	}
	if !renamed {
		dst = src
	}
	srcNS, err := checkNSName(e, src)
	if err != nil {
		return nsRule{}, err
	}
	dstNS, err := checkNSName(e, dst)
	if err != nil {
		return nsRule{}, err
	}
	switch {
	case srcNS && !dstNS:
		return nsRule{}, fmt.Errorf("entry %q maps namespace %q to database %q; write %s:%s.COLLECTION", e, src, dst, src, dst)
	case !srcNS && dstNS:
		return nsRule{}, fmt.Errorf("entry %q maps database %q to namespace %q; write %s:DATABASE to rename a database", e, src, dst, src)
	}
	return nsRule{src: src, dst: dst, db: !srcNS}, nil
}

// checkNSName reports whether name is a namespace (db.collection) rather
// than a database, and rejects empty parts and spaces.
func checkNSName(entry, name string) (isNS bool, err error) {
	if strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' }) {
		return false, fmt.Errorf("entry %q: %q contains a space or control character", entry, name)
	}
	db, coll, isNS := strings.Cut(name, ".")
	switch {
	case db == "":
		return false, fmt.Errorf("entry %q: %q has an empty database name", entry, name)
	case isNS && coll == "":
		return false, fmt.Errorf("entry %q: %q has an empty collection name", entry, name)
	}
	return isNS, nil
}

// dbRule returns the database rule for db.
func (m NamespaceMap) dbRule(db string) (nsRule, bool) {
	for _, r := range m.rules {
		if r.db && r.src == db {
			return r, true
		}
	}
	return nsRule{}, false
}

// nsRule returns the namespace rule for ns.
func (m NamespaceMap) nsRule(ns string) (nsRule, bool) {
	i, ok := slices.BinarySearchFunc(m.rules, ns, func(r nsRule, s string) int { return strings.Compare(r.src, s) })
	if ok && !m.rules[i].db {
		return m.rules[i], true
	}
	// A database rule and a namespace rule never share a source (one has a
	// dot, the other not), so a hit above is unambiguous.
	return nsRule{}, false
}

// Check returns an error wrapping [ErrNamespaceConflict] when two of the
// source namespaces that m selects map to the same sink namespace, which
// would merge two collections.
func (m NamespaceMap) Check(sourceNamespaces []string) error {
	seen := make(map[string]string, len(sourceNamespaces))
	for _, ns := range sourceNamespaces {
		if !m.Selects(ns) {
			continue
		}
		dst := m.Map(ns)
		if prev, ok := seen[dst]; ok && prev != ns {
			return fmt.Errorf("%w: source namespaces %q and %q both map to %q (mapping %s)",
				ErrNamespaceConflict, prev, ns, dst, m)
		}
		seen[dst] = ns
	}
	return nil
}

// IsZero reports whether m selects every namespace unchanged.
func (m NamespaceMap) IsZero() bool { return len(m.rules) == 0 }

// SourceNamespaces returns the source-side names to plan: namespaces and
// database names, sorted. It returns nil for the zero map, meaning all.
func (m NamespaceMap) SourceNamespaces() []string {
	if len(m.rules) == 0 {
		return nil
	}
	out := make([]string, len(m.rules))
	for i, r := range m.rules {
		out[i] = r.src
	}
	return out
}

// Selects reports whether source namespace ns is part of the flow.
func (m NamespaceMap) Selects(ns string) bool {
	if len(m.rules) == 0 {
		return true
	}
	if _, ok := m.nsRule(ns); ok {
		return true
	}
	db, _, _ := strings.Cut(ns, ".")
	_, ok := m.dbRule(db)
	return ok
}

// Map returns the sink namespace of source namespace ns. A namespace that m
// does not select maps to itself. A name without a dot is taken as a
// database name, so "a:c" maps "a" to "c".
func (m NamespaceMap) Map(ns string) string {
	if r, ok := m.nsRule(ns); ok {
		return r.dst
	}
	db, coll, hasColl := strings.Cut(ns, ".")
	r, ok := m.dbRule(db)
	if !ok {
		return ns
	}
	if !hasColl {
		return r.dst
	}
	return r.dst + "." + coll
}

// Entries returns the canonical entries: sorted by source, an identity entry
// written without its target. Parsing them gives an equal map.
func (m NamespaceMap) Entries() []string {
	out := make([]string, len(m.rules))
	for i, r := range m.rules {
		out[i] = r.String()
	}
	return out
}

// String returns the canonical entries separated by commas, or "*" for the
// zero map.
func (m NamespaceMap) String() string {
	if len(m.rules) == 0 {
		return "*"
	}
	return strings.Join(m.Entries(), ",")
}
