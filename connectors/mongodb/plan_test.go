package mongodb

import (
	"bytes"
	"math/rand"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/dsyncio/dsync/sdk"
)

// The plan of a collection mixing every _id type FerretDB stores covers
// each document exactly once, through many partitions whose split points
// fall in every type bracket, read page by page.
func TestPlanMixedIDTypesExactlyOnce(t *testing.T) {
	t.Parallel()
	uri := startFerret(t, false)
	runPlanExactlyOnce(t, uri, "mix.c", mixedIDs(1200), 6)
}

// runPlanExactlyOnce seeds ns with one document per id, plans it in
// partitions of 37 documents and reads every partition in pages of 11.
func runPlanExactlyOnce(t *testing.T, uri, ns string, ids []any, minBrackets int) {
	cl := connect(t, uri)
	seed(t, cl, ns, ids, 20)
	want := serverDocs(t, cl, ns)
	if len(want) != len(ids) {
		t.Fatalf("seeded %d documents, server has %d", len(ids), len(want))
	}

	c := configured(t, withQuery(uri, "partitionDocs=37&pageDocs=11"))
	plan, err := c.GeneratePlan(testCtx(t), sdk.PlanRequest{Namespaces: []string{ns}, InitialSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Partitions) < len(ids)/37/2 {
		t.Fatalf("plan has %d partitions, want about %d/37", len(plan.Partitions), len(ids))
	}
	// Split points must fall in many brackets for the test to mean much.
	brs := map[int]bool{}
	for _, p := range plan.Partitions {
		_, r, _, err := decodePartition(p.Cursor)
		if err != nil {
			t.Fatal(err)
		}
		if r.lo != nil {
			brs[r.lo.B] = true
		}
	}
	if len(brs) < minBrackets {
		t.Errorf("split points fall in %d type brackets, want at least %d", len(brs), minBrackets)
	}
	seen := map[string]int{}
	for _, p := range plan.Partitions {
		for _, d := range readPartition(t, c, p, nil) {
			seen[idKey(d.Lookup("_id"))]++
		}
	}
	assertExactlyOnce(t, want, seen)
}

func assertExactlyOnce(t *testing.T, want map[string]bson.Raw, seen map[string]int) {
	t.Helper()
	for k, d := range want {
		if seen[k] != 1 {
			t.Errorf("_id %s (%s) read %d times, want once", d.Lookup("_id"), d.Lookup("_id").Type, seen[k])
		}
	}
	for k, n := range seen {
		if _, ok := want[k]; !ok {
			t.Errorf("read %d times an _id that is not in the collection: %q", n, k)
		}
	}
}

// Any increasing split points, including bracket starts and points in
// every bracket, give ranges whose server-side filters select every _id
// exactly once.
func TestRangeFiltersPartitionEveryBracket(t *testing.T) {
	t.Parallel()
	uri := startFerret(t, false)
	cl := connect(t, uri)
	seed(t, cl, "mix.r", mixedIDs(100), 0)
	want := serverDocs(t, cl, "mix.r")
	coll := cl.Database("mix").Collection("r")

	cur, err := coll.Find(testCtx(t), bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	var sorted []bson.RawValue
	for cur.Next(testCtx(t)) {
		sorted = append(sorted, copyValue(cur.Current.Lookup("_id")))
	}
	// The server's order of brackets is the table's.
	for i := 1; i < len(sorted); i++ {
		if bracketOf(sorted[i-1].Type) > bracketOf(sorted[i].Type) {
			t.Fatalf("server sorts %s before %s, against the bracket table", sorted[i-1].Type, sorted[i].Type)
		}
	}

	rng := rand.New(rand.NewSource(1))
	for trial := range 6 {
		var vals []bson.RawValue
		for _, v := range sorted {
			if rng.Intn(20) < trial%3+1 {
				vals = append(vals, v)
			}
		}
		bounds := increasingBounds(vals)
		if trial%3 == 0 {
			// Bracket starts, including brackets with no document.
			var bs []bound
			for b := range brackets {
				bs = append(bs, bound{B: b})
			}
			bounds = bs
		}
		seen := map[string]int{}
		for _, r := range rangesBetween(bounds) {
			for _, q := range []idRange{r} {
				cur, err := coll.Find(testCtx(t), q.filter(true))
				if err != nil {
					t.Fatalf("trial %d: filter %v: %v", trial, q.filter(true), err)
				}
				for cur.Next(testCtx(t)) {
					seen[idKey(cur.Current.Lookup("_id"))]++
				}
			}
		}
		assertExactlyOnce(t, want, seen)
		if t.Failed() {
			t.Fatalf("trial %d failed", trial)
		}
	}

	// Keyset resumption: after each _id, the rest of its range.
	all := idRange{}
	for i, v := range sorted {
		if i%2 == 1 && bracketOf(v.Type) == bracketOf(sorted[i-1].Type) {
			continue
		}
		cur, err := coll.Find(testCtx(t), all.after(v).filter(true), options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			t.Fatal(err)
		}
		var got []bson.RawValue
		for cur.Next(testCtx(t)) {
			got = append(got, copyValue(cur.Current.Lookup("_id")))
		}
		if len(got) != len(sorted)-i-1 {
			t.Fatalf("after %s (%s): %d _ids, want %d", v, v.Type, len(got), len(sorted)-i-1)
		}
		for j, g := range got {
			if w := sorted[i+1+j]; g.Type != w.Type || !bytes.Equal(g.Value, w.Value) {
				t.Fatalf("after %s: _id %d is %s, want %s", v, j, g, w)
			}
		}
	}
}
