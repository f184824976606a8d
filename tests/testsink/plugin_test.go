package testsink_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/internal/wire"
	"github.com/dsyncio/dsync/sdk"
	"github.com/dsyncio/dsync/tests/testsink"
)

// startPlugin launches the built plugin as a real go-plugin subprocess with
// AutoMTLS and returns the host side of its connector service.
func startPlugin(t *testing.T, bin string) (*wire.ConnectorClient, *plugin.Client) {
	t.Helper()
	// The plugin's log is shown only when the test fails; registered first,
	// this cleanup runs after the plugin is stopped.
	var log syncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("plugin log:\n%s", log.String())
		}
	})
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  wire.Handshake,
		VersionedPlugins: wire.VersionedPlugins(),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		GRPCDialOptions:  wire.DialOptions(),
		Cmd:              exec.Command(bin),
		UnixSocketConfig: &plugin.UnixSocketConfig{TempDir: t.TempDir()},
		Logger:           hclog.New(&hclog.LoggerOptions{Name: "testsink", Output: &log, Level: hclog.Debug}),
	})
	t.Cleanup(client.Kill)
	rpc, err := client.Client()
	if err != nil {
		t.Fatalf("start plugin: %v", err)
	}
	raw, err := rpc.Dispense(wire.ConnectorPluginName)
	if err != nil {
		t.Fatalf("dispense %s: %v", wire.ConnectorPluginName, err)
	}
	conn, ok := raw.(*wire.ConnectorClient)
	if !ok {
		t.Fatalf("dispensed %T, want *wire.ConnectorClient", raw)
	}
	return conn, client
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestPluginSubprocess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the plugin binary")
	}
	ctx := context.Background()
	bin := testsink.BuildBinary(t, t.TempDir())
	if again := testsink.BuildBinary(t, t.TempDir()); again == bin {
		t.Errorf("BuildBinary returned %s for two directories", bin)
	}
	dir := t.TempDir()
	conn, client := startPlugin(t, bin)

	if err := conn.Configure(ctx, sdk.Config{URL: "testsink:///relative?x"}); sdk.KindOf(err) != sdk.KindInvalidArgument {
		t.Errorf("Configure with a bad URL = %v, want invalid argument", err)
	}
	if err := conn.Configure(ctx, sdk.Config{URL: testsink.Options{Dir: dir, FatalIDs: []string{"bad"}}.URL()}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	info, err := conn.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != "testsink:"+dir || info.DBType != testsink.DBType || info.Source == nil || !info.Source.GetByIDs || info.Sink == nil {
		t.Errorf("Info = %+v", info)
	}

	docs := []bson.Raw{
		raw(t, bson.D{{Key: "_id", Value: int32(1)}, {Key: "v", Value: "one"}}),
		raw(t, bson.D{{Key: "_id", Value: "1"}, {Key: "v", Value: "string one"}}),
	}
	if err := conn.WriteData(ctx, "db.c", docs); err != nil {
		t.Fatalf("WriteData: %v", err)
	}
	if err := conn.WriteUpdates(ctx, "db.c", []sdk.Update{{
		ID: idv(t, int32(2)), Type: sdk.UpdatePartial, Doc: raw(t, bson.D{{Key: "a.b", Value: int32(3)}}),
	}}); err != nil {
		t.Fatalf("WriteUpdates: %v", err)
	}
	got, err := conn.GetByIDs(ctx, "db.c", []bson.RawValue{idv(t, "1"), idv(t, "missing"), idv(t, int32(1))})
	if err != nil {
		t.Fatalf("GetByIDs: %v", err)
	}
	if len(got) != 3 || string(got[0]) != string(docs[1]) || got[1] != nil || string(got[2]) != string(docs[0]) {
		t.Errorf("GetByIDs = %v", got)
	}

	err = conn.WriteData(ctx, "db.c", []bson.Raw{raw(t, bson.D{{Key: "_id", Value: "bad"}})})
	if sdk.KindOf(err) != sdk.KindFatal || !strings.Contains(err.Error(), "db.c") || !strings.Contains(err.Error(), "bad") {
		t.Errorf("WriteData of a rejected id over gRPC = %v (kind %v), want a fatal error naming db.c and bad", err, sdk.KindOf(err))
	}

	plan, err := conn.GeneratePlan(ctx, sdk.PlanRequest{InitialSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Partitions) != 1 {
		t.Fatalf("plan = %+v", plan)
	}
	page, err := conn.ListData(ctx, plan.Partitions[0], nil)
	if err != nil || len(page.Docs) != 3 || len(page.NextCursor) != 0 {
		t.Errorf("ListData = %d documents, cursor %x, %v", len(page.Docs), page.NextCursor, err)
	}

	// A graceful stop closes the store, so it can be inspected.
	client.Kill()
	if !client.Exited() {
		t.Fatal("plugin still running after Kill")
	}
	s, err := testsink.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stored, err := s.Docs("db.c")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		testsink.IDOf(int32(1)): string(docs[0]),
		testsink.IDOf("1"):      string(docs[1]),
		testsink.IDOf(int32(2)): string(raw(t, bson.D{{Key: "_id", Value: int32(2)}, {Key: "a", Value: bson.D{{Key: "b", Value: int32(3)}}}})),
	}
	if len(stored) != len(want) {
		t.Errorf("stored %v", stored)
	}
	for k, w := range want {
		if string(stored[k]) != w {
			t.Errorf("document %s = %v", k, stored[k])
		}
	}
	cs, err := s.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if cs.DocsWritten != 2 || cs.UpdatesApplied != 1 || cs.DataCalls != 1 || cs.UpdateCalls != 1 {
		t.Errorf("Counters = %+v", cs)
	}
}

// TestPluginKilled proves durability: a write acknowledged by the plugin
// survives a SIGKILL of the plugin.
func TestPluginKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the plugin binary")
	}
	ctx := context.Background()
	bin := testsink.BuildBinary(t, t.TempDir())
	dir := t.TempDir()
	conn, client := startPlugin(t, bin)
	if err := conn.Configure(ctx, sdk.Config{URL: testsink.URL(dir)}); err != nil {
		t.Fatal(err)
	}
	var batch []bson.Raw
	for i := range 100 {
		batch = append(batch, raw(t, bson.D{{Key: "_id", Value: int64(i)}}))
	}
	if err := conn.WriteData(ctx, "ns", batch); err != nil {
		t.Fatal(err)
	}
	pid := client.ReattachConfig().Pid
	p, err := os.FindProcess(pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	// Kill now only cleans up: the process is gone.
	client.Kill()

	s, err := testsink.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n, err := s.Count("ns")
	if err != nil || n != len(batch) {
		t.Errorf("after SIGKILL the store holds %d documents (%v), want %d", n, err, len(batch))
	}
}
