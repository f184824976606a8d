package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/dsyncio/dsync/sdk"
)

const toastSchema = `CREATE SCHEMA app;
CREATE TABLE app.docs (id int PRIMARY KEY, name text, ts timestamptz, body text);
ALTER TABLE app.docs ALTER COLUMN body SET STORAGE EXTERNAL;
CREATE TABLE app.docs_full (id int PRIMARY KEY, name text, body text);
ALTER TABLE app.docs_full ALTER COLUMN body SET STORAGE EXTERNAL;
ALTER TABLE app.docs_full REPLICA IDENTITY FULL;
CREATE TABLE app.nopk (a int, b text)`

// TestCDCApplyPostgres copies a database and applies its change stream to
// a second one with this connector's sink, through unchanged TOAST values
// (partial updates), REPLICA IDENTITY FULL, a key change of a row with
// TOAST values and a table without a primary key; the two databases end
// up identical.
func TestCDCApplyPostgres(t *testing.T) {
	src, dst := newDB(t), newDB(t)
	schema := strings.Split(toastSchema, ";\n")
	exec(t, src, schema...)
	exec(t, dst, schema...)
	big := "repeat(md5(random()::text), 400)" // 12.8 kB, stored out of line
	exec(t, src,
		"INSERT INTO app.docs SELECT i, 'doc ' || i, now(), "+big+" FROM generate_series(1, 3) i",
		"INSERT INTO app.docs_full SELECT i, 'doc ' || i, "+big+" FROM generate_series(1, 2) i",
		"INSERT INTO app.nopk VALUES (1, 'x'), (1, 'x'), (2, NULL)")
	source := configured(t, src+"&no_pk=replica-identity-full")
	sink := configured(t, dst)
	nss := []string{"app.docs", "app.docs_full", "app.nopk"}
	p := plan(t, source, sdk.PlanRequest{Namespaces: nss, InitialSync: true, Updates: true})
	if ri := queryOne(t, src, "SELECT relreplident FROM pg_class WHERE oid = 'app.nopk'::regclass"); ri != "f" {
		t.Errorf("app.nopk has REPLICA IDENTITY %q after a plan with no_pk=%s, want f", ri, NoPKReplicaIdentityFull)
	}
	for ns, docs := range readAll(t, source, p) {
		if err := sink.WriteData(context.Background(), ns, docs); err != nil {
			t.Fatalf("WriteData(%s): %v", ns, err)
		}
	}
	exec(t, src,
		"UPDATE app.docs SET name = 'renamed', ts = '2024-01-01 00:00:00.123456+00' WHERE id = 1", // body unchanged, not sent
		"UPDATE app.docs_full SET name = 'renamed' WHERE id = 1",                                  // body from the old row
		"UPDATE app.docs SET id = 20 WHERE id = 2",                                                // key change, body not sent
		"UPDATE app.docs SET body = 'small now' WHERE id = 3",
		"UPDATE app.nopk SET b = 'y' WHERE a = 2",
		"DELETE FROM app.nopk WHERE a = 1",
		"INSERT INTO app.nopk VALUES (3, 'z')",
		"UPDATE app.docs SET name = NULL WHERE id = 1",
	)
	s := startStream(t, source, nss, p.UpdatesPartitions[0].Cursor)
	evs := s.wait(11)
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	got := summary(evs)
	want := []string{
		"app.docs partial 1",
		"app.docs_full update 1",
		"app.docs delete 2", "app.docs update 20",
		"app.docs update 3",
		"app.nopk delete", "app.nopk insert",
		"app.nopk delete", // both (1, 'x') rows: one _id, deleted twice
		"app.nopk delete",
		"app.nopk insert",
		"app.docs partial 1",
	}
	for i, w := range want {
		if i >= len(got) || !strings.HasPrefix(got[i], w) {
			t.Fatalf("update %d is %q, want %q\ngot %v", i, at(got, i), w, got)
		}
	}
	partial := evs[0].u
	if _, err := partial.Doc.LookupErr("body"); err == nil {
		t.Errorf("the partial update sets body, which was not sent: %s", partial.Doc)
	}
	if v := partial.Doc.Lookup("name").StringValue(); v != "renamed" {
		t.Errorf("partial update: name %q", v)
	}
	if v := partial.Doc.Lookup(MetaField + ".ts").StringValue(); v != "2024-01-01 00:00:00.123456+00" {
		t.Errorf("partial update: %s.ts = %q, want the exact text; doc %s", MetaField, v, partial.Doc)
	}
	if _, err := evs[1].u.Doc.LookupErr("body"); err != nil {
		t.Errorf("REPLICA IDENTITY FULL: the update lacks body: %s", evs[1].u.Doc)
	}

	// Apply the stream, batch by batch as it came.
	var batch []sdk.Update
	ns := ""
	for _, e := range evs {
		if ns != "" && e.ns != ns {
			t.Fatalf("a batch mixes namespaces")
		}
		ns = e.ns
		batch = append(batch, e.u)
		if e.cursor != nil {
			if err := sink.WriteUpdates(context.Background(), ns, batch); err != nil {
				t.Fatalf("WriteUpdates(%s): %v", ns, err)
			}
			batch, ns = nil, ""
		}
	}
	for _, tbl := range []string{"app.docs", "app.docs_full"} {
		compareTables(t, src, dst, tbl)
	}
	a := queryStrings(t, src, "SELECT a, b FROM app.nopk ORDER BY a")
	b := queryStrings(t, dst, "SELECT a, b FROM app.nopk ORDER BY a")
	if strings.Join(flat(a), "|") != strings.Join(flat(b), "|") {
		t.Errorf("app.nopk: source %v, sink %v", a, b)
	}
}

func flat(rows [][]string) []string {
	var out []string
	for _, r := range rows {
		out = append(out, strings.Join(r, ","))
	}
	return out
}

// TestCDCTruncate: a TRUNCATE of a streamed table stops the stream with a
// fatal error that says what happened; one of another table does not.
func TestCDCTruncate(t *testing.T) {
	url := newDB(t)
	exec(t, url, "CREATE TABLE a (id int PRIMARY KEY)", "CREATE TABLE b (id int PRIMARY KEY)", "INSERT INTO a VALUES (1)")
	c := configured(t, url+"&publication=allpub")
	exec(t, url, "CREATE PUBLICATION allpub FOR ALL TABLES")
	p := plan(t, c, sdk.PlanRequest{Namespaces: []string{"public.a"}, Updates: true})
	rep, _ := ReplicationOf(p.UpdatesPartitions[0].Cursor)
	if rep.PublicationOwned || !rep.SlotOwned {
		t.Errorf("replication %+v: the named publication is the user's, the slot dsync's", rep)
	}
	exec(t, url, "INSERT INTO a VALUES (2)", "TRUNCATE b", "INSERT INTO a VALUES (3)", "TRUNCATE a", "INSERT INTO a VALUES (4)")
	s := startStream(t, c, []string{"public.a"}, p.UpdatesPartitions[0].Cursor)
	err := s.waitErr()
	if !errors.Is(err, ErrTruncate) || sdk.KindOf(err) != sdk.KindFatal {
		t.Fatalf("StreamUpdates returned %v (kind %v), want a fatal ErrTruncate", err, sdk.KindOf(err))
	}
	if !strings.Contains(err.Error(), `"public"."a"`) {
		t.Errorf("the error does not name the table: %v", err)
	}
	if got := summary(s.wait(2)); len(got) != 2 || got[0] != "public.a insert 2" || got[1] != "public.a insert 3" {
		t.Errorf("before the truncate: %v, want inserts 2 and 3", got)
	}
}

// TestCDCPartitioned: changes of a partitioned table's partitions arrive
// as changes of the partitioned table, the namespace that was planned.
func TestCDCPartitioned(t *testing.T) {
	url := newDB(t)
	exec(t, url, "CREATE TABLE m (id int, region text, v int, PRIMARY KEY (id, region)) PARTITION BY LIST (region)",
		"CREATE TABLE m_eu PARTITION OF m FOR VALUES IN ('eu')", "CREATE TABLE m_us PARTITION OF m FOR VALUES IN ('us')")
	c := configured(t, url)
	p := plan(t, c, sdk.PlanRequest{InitialSync: true, Updates: true})
	if len(p.Partitions) != 1 || p.Partitions[0].Namespace != "public.m" {
		t.Fatalf("plan: %+v", p.Partitions)
	}
	exec(t, url, "INSERT INTO m VALUES (1, 'eu', 1), (2, 'us', 2)", "UPDATE m SET region = 'us' WHERE id = 1", "DELETE FROM m WHERE id = 2")
	s := startStream(t, c, p.UpdatesPartitions[0].Namespaces, p.UpdatesPartitions[0].Cursor)
	got := summary(s.wait(5))
	want := []string{
		`public.m insert {"id":1,"region":"eu"}`, `public.m insert {"id":2,"region":"us"}`,
		`public.m delete {"id":1,"region":"eu"}`, `public.m insert {"id":1,"region":"us"}`,
		`public.m delete {"id":2,"region":"us"}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
