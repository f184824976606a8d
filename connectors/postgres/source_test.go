package postgres

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
)

const planSchema = `CREATE SCHEMA app;
CREATE TABLE app.single (id int PRIMARY KEY, v text);
INSERT INTO app.single SELECT i, 'v' || i FROM generate_series(1, 5000) i;
CREATE TABLE app.comp (t text, n int, v int, PRIMARY KEY (n, t));
INSERT INTO app.comp SELECT chr(65 + i % 26) || i, i % 13, i FROM generate_series(1, 3000) i;
CREATE TABLE app.ids (u uuid PRIMARY KEY DEFAULT gen_random_uuid(), v int);
INSERT INTO app.ids (v) SELECT generate_series(1, 1200);
CREATE TABLE app.parted (id int, region text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
CREATE TABLE app.parted_eu PARTITION OF app.parted FOR VALUES IN ('eu');
CREATE TABLE app.parted_us PARTITION OF app.parted FOR VALUES IN ('us');
INSERT INTO app.parted SELECT i, CASE WHEN i % 2 = 0 THEN 'eu' ELSE 'us' END FROM generate_series(1, 2000) i;
CREATE TABLE app.empty (id int PRIMARY KEY);
CREATE TABLE app.nopk (a int, b text);
INSERT INTO app.nopk SELECT i, 'r' || i FROM generate_series(1, 1500) i;
CREATE TABLE app.parent (id int PRIMARY KEY);
CREATE TABLE app.child (extra int) INHERITS (app.parent);
INSERT INTO app.parent VALUES (1), (2);
INSERT INTO app.child VALUES (3, 0);
ANALYZE`

// TestPlanCoverage: a default plan lists every table with a primary key
// (partitioned tables once, through their parent; inheritance parents
// without their children; no table without a key unless asked), and its partitions cover every row exactly once.
func TestPlanCoverage(t *testing.T) {
	url := newDB(t)
	exec(t, url, strings.Split(planSchema, ";\n")...)
	opts := "&partition_rows=400&page_rows=150"
	c := configured(t, url+opts)
	p := plan(t, c, sdk.PlanRequest{InitialSync: true})
	want := map[string]int{"app.single": 5000, "app.comp": 3000, "app.ids": 1200, "app.parted": 2000, "app.empty": 0, "app.parent": 2}
	checkCoverage(t, c, p, want)

	c2 := configured(t, url+opts+"&no_pk=replica-identity-full")
	p2 := plan(t, c2, sdk.PlanRequest{InitialSync: true})
	want["app.nopk"] = 1500
	want["app.child"] = 1 // inheritance children do not inherit the primary key
	checkCoverage(t, c2, p2, want)

	// Named namespaces: only those, errors for the rest.
	p3 := plan(t, c, sdk.PlanRequest{Namespaces: []string{"app.comp"}, InitialSync: true})
	checkCoverage(t, c, p3, map[string]int{"app.comp": 3000})
	for _, nss := range [][]string{{"app.missing"}, {"app.nopk"}, {"app.comp", "app.comp"}, {"nodot"}} {
		_, err := c.GeneratePlan(context.Background(), sdk.PlanRequest{Namespaces: nss, InitialSync: true})
		if sdk.KindOf(err) != sdk.KindInvalidArgument {
			t.Errorf("GeneratePlan(%q): %v, want an invalid argument", nss, err)
		}
	}
	md, err := c.NamespaceMetadata(context.Background(), "app.single")
	if err != nil || md.Count != 5000 || md.SizeBytes == 0 {
		t.Errorf("NamespaceMetadata(app.single) = %+v, %v", md, err)
	}
}

func checkCoverage(t *testing.T, c *Connector, p sdk.Plan, want map[string]int) {
	t.Helper()
	seen := map[string]map[string]bool{}
	parts := map[string]int{}
	for _, part := range p.Partitions {
		parts[part.Namespace]++
		for _, d := range readPartition(t, c, part, nil) {
			id := idJSON(d.Lookup("_id"))
			if seen[part.Namespace] == nil {
				seen[part.Namespace] = map[string]bool{}
			}
			if seen[part.Namespace][id] {
				t.Errorf("%s: _id %s is read twice", part.Namespace, id)
			}
			seen[part.Namespace][id] = true
		}
	}
	for ns, n := range want {
		if parts[ns] == 0 {
			t.Errorf("%s is not planned", ns)
		}
		if len(seen[ns]) != n {
			t.Errorf("%s: %d documents, want %d", ns, len(seen[ns]), n)
		}
		if n >= 1200 && parts[ns] < 2 {
			t.Errorf("%s: %d partition(s) for %d rows; want several", ns, parts[ns], n)
		}
	}
	for ns := range parts {
		if _, ok := want[ns]; !ok {
			t.Errorf("%s is planned, but should not be", ns)
		}
	}
	t.Logf("partitions: %v", parts)
}

// TestCursorsDurable: a partition resumed from any page cursor by a new
// connector instance yields exactly the rest.
func TestCursorsDurable(t *testing.T) {
	url := newDB(t)
	exec(t, url, strings.Split(planSchema, ";\n")...)
	opts := "&partition_rows=2000&page_rows=97&no_pk=replica-identity-full"
	c := configured(t, url+opts)
	p := plan(t, c, sdk.PlanRequest{Namespaces: []string{"app.comp", "app.single", "app.nopk", "app.parted"}, InitialSync: true})
	for _, part := range p.Partitions {
		var pages [][]bson.Raw
		var cursors [][]byte
		var cursor []byte
		for {
			page, err := c.ListData(context.Background(), part, cursor)
			if err != nil {
				t.Fatal(err)
			}
			pages = append(pages, page.Docs)
			if len(page.NextCursor) == 0 {
				break
			}
			cursors = append(cursors, page.NextCursor)
			cursor = page.NextCursor
		}
		if len(cursors) < 3 {
			t.Fatalf("%s: %d pages; want more", part.Namespace, len(pages))
		}
		for _, k := range []int{1, len(cursors) / 2, len(cursors)} {
			fresh := configured(t, url+opts)
			rest := readPartition(t, fresh, part, cursors[k-1])
			var want []bson.Raw
			for _, pg := range pages[k:] {
				want = append(want, pg...)
			}
			if len(rest) != len(want) {
				t.Fatalf("%s: resumed after page %d: %d documents, want %d", part.Namespace, k, len(rest), len(want))
			}
			for i := range want {
				if !bytes.Equal(rest[i], want[i]) {
					t.Fatalf("%s: resumed after page %d: document %d is %s, want %s", part.Namespace, k, i, rest[i], want[i])
				}
			}
			fresh.Close()
		}
	}
	// Cursors of other kinds are refused.
	_, err := c.ListData(context.Background(), p.Partitions[0], []byte(`{"k":"updates","v":1}`))
	if sdk.KindOf(err) != sdk.KindInvalidArgument {
		t.Errorf("ListData with an update cursor: %v", err)
	}
}

// TestGetByIDs: documents in request order, nil for missing ids and for
// ids that cannot be keys, repeated ids, composite keys in any field
// order.
func TestGetByIDs(t *testing.T) {
	url := newDB(t)
	exec(t, url, strings.Split(planSchema, ";\n")...)
	c := configured(t, url)
	get := func(ns string, ids ...any) []bson.Raw {
		t.Helper()
		vals := make([]bson.RawValue, len(ids))
		for i, id := range ids {
			vals[i] = idOfAny(t, id)
		}
		docs, err := c.GetByIDs(context.Background(), ns, vals)
		if err != nil {
			t.Fatalf("GetByIDs(%s, %v): %v", ns, ids, err)
		}
		if len(docs) != len(ids) {
			t.Fatalf("GetByIDs(%s): %d documents for %d ids", ns, len(docs), len(ids))
		}
		return docs
	}
	vs := func(docs []bson.Raw, field string) string {
		var out []string
		for _, d := range docs {
			if d == nil {
				out = append(out, "nil")
				continue
			}
			out = append(out, fmt.Sprint(d.Lookup(field)))
		}
		return strings.Join(out, " ")
	}
	if got := vs(get("app.single", int32(5), int64(3), int32(99999), "x", 2.0, int32(5), 1.5), "v"); got != `"v5" "v3" nil nil "v2" "v5" nil` {
		t.Errorf("app.single: %s", got)
	}
	comp := func(n int32, s string) bson.D { return bson.D{{Key: "n", Value: n}, {Key: "t", Value: s}} }
	if got := vs(get("app.comp", comp(1, "B1"), bson.D{{Key: "t", Value: "C2"}, {Key: "n", Value: int32(2)}}, comp(1, "nope"), bson.D{{Key: "n", Value: int32(1)}}), "v"); got != `{"$numberInt":"1"} {"$numberInt":"2"} nil nil` {
		t.Errorf("app.comp: %s", got)
	}
	if docs := get("app.single"); len(docs) != 0 {
		t.Errorf("no ids: %v", docs)
	}
	if docs := get("app.absent", int32(1)); docs[0] != nil {
		t.Errorf("a missing table: %v", docs)
	}
	// The same documents as ListData.
	p := plan(t, c, sdk.PlanRequest{Namespaces: []string{"app.ids"}, InitialSync: true})
	docs := readAll(t, c, p)["app.ids"]
	ids := make([]bson.RawValue, len(docs))
	for i, d := range docs {
		ids[i] = d.Lookup("_id")
	}
	got, err := c.GetByIDs(context.Background(), "app.ids", ids)
	if err != nil {
		t.Fatal(err)
	}
	for i := range docs {
		if !bytes.Equal(got[i], docs[i]) {
			t.Fatalf("app.ids: GetByIDs returned %s, ListData %s", got[i], docs[i])
		}
	}
}
