package postgres

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/internal/testserver/pg"
	"github.com/dsyncio/dsync/sdk"
)

// TestOutage: while the server is down, calls fail with retryable errors
// and the stream ends with one; once it is back, the stream resumes from
// its last cursor without losing changes.
func TestOutage(t *testing.T) {
	cl := pg.Start(t)
	url := cl.CreateDB("outage")
	cl.Exec("outage", "CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t VALUES (1)")
	c := configured(t, url)
	p := plan(t, c, sdk.PlanRequest{Namespaces: []string{"public.t"}, InitialSync: true, Updates: true})
	s := startStream(t, c, nil, p.UpdatesPartitions[0].Cursor)
	cl.Exec("outage", "INSERT INTO t VALUES (2)")
	evs := s.wait(1)
	last := evs[0].cursor

	cl.Stop()
	if err := s.waitErr(); !sdk.IsRetryable(err) {
		t.Errorf("the stream ended with %v (kind %v) when the server stopped; want a retryable error", err, sdk.KindOf(err))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.ListData(ctx, p.Partitions[0], nil); !sdk.IsRetryable(err) {
		t.Errorf("ListData while the server is down: %v (kind %v), want retryable", err, sdk.KindOf(err))
	}
	doc, _ := bson.Marshal(bson.D{{Key: "_id", Value: int32(9)}})
	if err := c.WriteData(ctx, "public.t", []bson.Raw{doc}); !sdk.IsRetryable(err) {
		t.Errorf("WriteData while the server is down: %v (kind %v), want retryable", err, sdk.KindOf(err))
	}
	if err := New().Configure(ctx, sdk.Config{URL: url}); !sdk.IsRetryable(err) {
		t.Errorf("Configure while the server is down: %v (kind %v), want retryable", err, sdk.KindOf(err))
	}

	cl.Start()
	cl.Exec("outage", "INSERT INTO t VALUES (3)")
	s2 := startStream(t, c, nil, last)
	if got := summary(s2.wait(1)); len(got) != 1 || got[0] != "public.t insert 3" {
		t.Errorf("after the outage: %v, want the insert of 3", got)
	}
	if err := s2.stop(); err != nil {
		t.Error(err)
	}
	if docs := readAll(t, c, p)["public.t"]; len(docs) != 3 {
		t.Errorf("after the outage ListData reads %d rows, want 3", len(docs))
	}
}

// TestDropReplication drops the slot and the publication a plan created,
// and does nothing when they are gone.
func TestDropReplication(t *testing.T) {
	url := newDB(t)
	exec(t, url, "CREATE TABLE t (id int PRIMARY KEY)")
	c := configured(t, url+"&slot=my_slot")
	p := plan(t, c, sdk.PlanRequest{Updates: true})
	rep, err := ReplicationOf(p.UpdatesPartitions[0].Cursor)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Slot != "my_slot" || rep.SlotOwned || !rep.PublicationOwned {
		t.Errorf("replication %+v: want the named slot (not owned) and a derived publication", rep)
	}
	for range 2 {
		if err := DropReplication(context.Background(), url+"&slot=ignored", rep.Slot, rep.Publication); err != nil {
			t.Fatal(err)
		}
	}
	n := queryOne(t, url, "SELECT (SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1) + (SELECT count(*) FROM pg_publication)", rep.Slot)
	if n != "0" {
		t.Errorf("%s slots and publications remain", n)
	}
}
