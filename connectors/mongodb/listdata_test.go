package mongodb

import (
	"fmt"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
)

// Every page cursor of every partition resumes in a new connector (no
// cached server cursor) with exactly the rest of the partition, and a
// partition read in one process holds one server cursor at a time.
func TestListDataDurableCursors(t *testing.T) {
	t.Parallel()
	uri := startFerret(t, false)
	cl := connect(t, uri)
	seed(t, cl, "dur.c", mixedIDs(400), 100)
	url := withQuery(uri, "partitionDocs=150&pageDocs=40")
	a := configured(t, url)
	plan, err := a.GeneratePlan(testCtx(t), sdk.PlanRequest{Namespaces: []string{"dur.c"}, InitialSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Partitions) < 2 {
		t.Fatalf("%d partitions, want several", len(plan.Partitions))
	}
	st := a.st.Load()
	seen := map[string]int{}
	for _, p := range plan.Partitions {
		// Read the whole partition in a, recording every page and cursor.
		var pages [][]bson.Raw
		var cursors [][]byte
		var cursor []byte
		for {
			page, err := a.ListData(testCtx(t), p, cursor)
			if err != nil {
				t.Fatal(err)
			}
			pages = append(pages, page.Docs)
			cursors = append(cursors, page.NextCursor)
			if n := len(st.cache.entries); len(page.NextCursor) > 0 && n != 1 {
				t.Errorf("%d cached server cursors while reading one partition, want 1", n)
			}
			if len(page.NextCursor) == 0 {
				break
			}
			cursor = page.NextCursor
		}
		if n := len(st.cache.entries); n != 0 {
			t.Errorf("%d cached server cursors after the partition ended, want 0", n)
		}
		for _, page := range pages {
			for _, d := range page {
				seen[idKey(d.Lookup("_id"))]++
			}
		}
		// Resume from a middle cursor in a new connector.
		k := len(cursors) / 2
		if len(cursors[k]) == 0 {
			continue
		}
		b := configured(t, url)
		rest := readPartition(t, b, p, cursors[k])
		var want []bson.Raw
		for _, page := range pages[k+1:] {
			want = append(want, page...)
		}
		if len(rest) != len(want) {
			t.Fatalf("resumed partition gives %d documents, want %d", len(rest), len(want))
		}
		for i := range rest {
			if string(rest[i]) != string(want[i]) {
				t.Fatalf("resumed document %d is %v, want %v", i, rest[i].Lookup("_id"), want[i].Lookup("_id"))
			}
		}
		_ = b.Close()
	}
	assertExactlyOnce(t, serverDocs(t, cl, "dur.c"), seen)

	// Pages are bounded by bytes too: 100-byte documents, 1000-byte pages.
	c := configured(t, withQuery(uri, "pageBytes=1000"))
	plan, err = c.GeneratePlan(testCtx(t), sdk.PlanRequest{Namespaces: []string{"dur.c"}, InitialSync: true})
	if err != nil {
		t.Fatal(err)
	}
	page, err := c.ListData(testCtx(t), plan.Partitions[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	size := 0
	for _, d := range page.Docs {
		size += len(d)
	}
	if size > 1000 || len(page.Docs) < 2 {
		t.Errorf("page of %d documents and %d bytes, want several documents within 1000 bytes", len(page.Docs), size)
	}

	// Cursors of another partition or connector are rejected.
	if _, err := c.ListData(testCtx(t), sdk.Partition{Namespace: "dur.c", Cursor: []byte("junk")}, nil); sdk.KindOf(err) != sdk.KindInvalidArgument {
		t.Errorf("ListData with a junk partition: %v, want an invalid argument", err)
	}
	p := plan.Partitions[0]
	p.Namespace = "dur.other"
	if _, err := c.ListData(testCtx(t), p, nil); sdk.KindOf(err) != sdk.KindInvalidArgument {
		t.Errorf("ListData with a partition of another namespace: %v, want an invalid argument", err)
	}
}

// Namespaces resolve to collections: whole databases, the default plan
// without system databases, system collections and views; missing
// collections and views are invalid arguments.
func TestResolveNamespaces(t *testing.T) {
	t.Parallel()
	uri := startFerret(t, false)
	cl := connect(t, uri)
	ctx := testCtx(t)
	for _, ns := range []string{"app.users", "app.orders", "logs.events"} {
		seed(t, cl, ns, []any{1}, 0)
	}
	if err := cl.Database("app").CreateCollection(ctx, "empty"); err != nil {
		t.Fatal(err)
	}
	seed(t, cl, "admin.keep_out", []any{1}, 0)
	c := configured(t, uri)
	st := c.st.Load()

	got, err := st.resolveNamespaces(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := "[app.empty app.orders app.users logs.events]"; fmt.Sprint(got) != want {
		t.Errorf("default plan namespaces %v, want %s", got, want)
	}
	got, err = st.resolveNamespaces(ctx, []string{"logs", "app.users", "logs.events"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "[app.users logs.events]"; fmt.Sprint(got) != want {
		t.Errorf("namespaces %v, want %s", got, want)
	}
	for _, bad := range []string{"app.missing", "nodb", "app.", ".x"} {
		if _, err := st.resolveNamespaces(ctx, []string{bad}); sdk.KindOf(err) != sdk.KindInvalidArgument {
			t.Errorf("namespace %q: %v, want an invalid argument", bad, err)
		}
	}
	// An empty collection is one partition.
	plan, err := c.GeneratePlan(ctx, sdk.PlanRequest{Namespaces: []string{"app.empty"}, InitialSync: true})
	if err != nil || len(plan.Partitions) != 1 {
		t.Fatalf("plan of an empty collection: %+v, %v; want one partition", plan, err)
	}
	page, err := c.ListData(ctx, plan.Partitions[0], nil)
	if err != nil || len(page.Docs) != 0 || len(page.NextCursor) != 0 {
		t.Errorf("ListData of an empty collection: %d docs, cursor %x, %v", len(page.Docs), page.NextCursor, err)
	}
	md, err := c.NamespaceMetadata(ctx, "app.users")
	if err != nil || md.Count != 1 || md.SizeBytes == 0 {
		t.Errorf("NamespaceMetadata(app.users) = %+v, %v; want 1 document and a size", md, err)
	}
}
