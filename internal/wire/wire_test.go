package wire

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/dsyncio/dsync/internal/spi"
	dsyncv1 "github.com/dsyncio/dsync/proto/dsync/v1"
)

func mustDoc(t testing.TB, d bson.D) bson.Raw {
	t.Helper()
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rawValue(t testing.TB, v any) bson.RawValue {
	t.Helper()
	typ, data, err := bson.MarshalValue(v)
	if err != nil {
		t.Fatal(err)
	}
	return bson.RawValue{Type: typ, Value: data}
}

func TestIDRoundTrip(t *testing.T) {
	oid := bson.NewObjectID()
	ids := []any{int32(1), int64(1), 1.5, "1", oid, bson.D{{Key: "a", Value: int32(1)}, {Key: "b", Value: "x"}},
		bson.Binary{Subtype: 4, Data: make([]byte, 16)}, bson.DateTime(1700000000000), true}
	for _, dt := range []spi.DataType{spi.DataTypeBSON, spi.DataTypeJSON} {
		for _, id := range ids {
			t.Run(fmt.Sprintf("%s/%T", dt, id), func(t *testing.T) {
				in := rawValue(t, id)
				b, err := EncodeID(in, dt)
				if err != nil {
					t.Fatal(err)
				}
				out, err := DecodeID(b, dt)
				if err != nil {
					t.Fatal(err)
				}
				if !out.Equal(in) {
					t.Fatalf("id %v became %v", in, out)
				}
			})
		}
	}
}

func TestDocJSONRoundTripKeepsOrderAndTypes(t *testing.T) {
	doc := mustDoc(t, bson.D{
		{Key: "_id", Value: bson.NewObjectID()},
		{Key: "z", Value: int32(1)},
		{Key: "a", Value: 2.5},
		{Key: "s", Value: "text"},
		{Key: "n", Value: bson.D{{Key: "y", Value: bson.A{int32(1), "two"}}}},
		{Key: "bin", Value: bson.Binary{Subtype: 0, Data: []byte{1, 2, 3}}},
		{Key: "null", Value: nil},
	})
	b, err := EncodeDoc(doc, spi.DataTypeJSON)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeDoc(b, spi.DataTypeJSON)
	if err != nil {
		t.Fatal(err)
	}
	if !bytesEqual(back, doc) {
		t.Fatalf("round trip changed the document:\n in: %s\nout: %s", doc, back)
	}
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

func TestDecodeRejectsBadDocuments(t *testing.T) {
	if _, err := DecodeDoc([]byte{1, 2, 3}, spi.DataTypeBSON); spi.KindOf(err) != spi.KindInvalidArgument {
		t.Fatalf("bad BSON: got %v, want invalid argument", err)
	}
	if _, err := DecodeDoc([]byte(`{"a":`), spi.DataTypeJSON); spi.KindOf(err) != spi.KindInvalidArgument {
		t.Fatalf("bad JSON: got %v, want invalid argument", err)
	}
}

func TestUpdateAndPlanRoundTrip(t *testing.T) {
	for _, dt := range []spi.DataType{spi.DataTypeBSON, spi.DataTypeJSON} {
		ups := []spi.Update{
			{ID: rawValue(t, int64(7)), Type: spi.UpdateInsert, Doc: mustDoc(t, bson.D{{Key: "_id", Value: int64(7)}, {Key: "v", Value: "a"}})},
			{ID: rawValue(t, "k"), Type: spi.UpdatePartial, Doc: mustDoc(t, bson.D{{Key: "a.b", Value: int32(2)}}), Unset: []string{"c", "d.e"}},
			{ID: rawValue(t, int64(7)), Type: spi.UpdateDelete},
		}
		pus, err := updatesToProto(ups, dt)
		if err != nil {
			t.Fatal(err)
		}
		back, err := updatesFromProto(pus, dt)
		if err != nil {
			t.Fatal(err)
		}
		for i := range ups {
			if !back[i].ID.Equal(ups[i].ID) || back[i].Type != ups[i].Type || string(back[i].Doc) != string(ups[i].Doc) ||
				fmt.Sprint(back[i].Unset) != fmt.Sprint(ups[i].Unset) {
				t.Fatalf("%s: update %d changed: %+v -> %+v", dt, i, ups[i], back[i])
			}
		}
	}
	plan := spi.Plan{
		Partitions:        []spi.Partition{{Namespace: "a.b", Cursor: []byte{1}, EstimatedCount: 3}},
		UpdatesPartitions: []spi.UpdatesPartition{{Namespaces: []string{"a.b", "a.c"}, Cursor: []byte{9}}},
	}
	if got := planFromProto(planToProto(plan)); fmt.Sprint(got) != fmt.Sprint(plan) {
		t.Fatalf("plan changed: %+v -> %+v", plan, got)
	}
	info := spi.Info{ID: "x", DBType: "t", Version: "1", ProtocolVersion: 1,
		Source: &spi.SourceCapabilities{DataTypes: []spi.DataType{spi.DataTypeJSON}, DefaultPlan: true, GetByIDs: true, Updates: true, AckUpdates: true, LSNStream: true, MultiNamespacePlan: true},
		Sink:   &spi.SinkCapabilities{DataTypes: []spi.DataType{spi.DataTypeBSON}}}
	if got := infoFromProto(infoToProto(info)); !reflect.DeepEqual(got, info) {
		t.Fatalf("info changed: %+v -> %+v", info, got)
	}
}

func TestErrorMapping(t *testing.T) {
	plain := errors.New("boom")
	cases := []struct {
		name string
		err  error
		code codes.Code
		kind spi.Kind
	}{
		{"retryable", spi.Retryable(plain), codes.Unavailable, spi.KindRetryable},
		{"fatal", spi.Fatal(plain), codes.Internal, spi.KindFatal},
		{"unclassified", plain, codes.Internal, spi.KindFatal},
		{"invalid", spi.InvalidArgument("bad url %q", "x"), codes.InvalidArgument, spi.KindInvalidArgument},
		{"unimplemented", spi.Unimplemented("GetByIds"), codes.Unimplemented, spi.KindUnimplemented},
		{"precondition", spi.FailedPrecondition(spi.ErrNotConfigured), codes.FailedPrecondition, spi.KindFailedPrecondition},
		{"canceled", context.Canceled, codes.Canceled, spi.KindCanceled},
		{"deadline", fmt.Errorf("wrapped: %w", context.DeadlineExceeded), codes.Unavailable, spi.KindRetryable},
		{"fatal wins over wrapped retryable", spi.Fatal(spi.Retryable(plain)), codes.Internal, spi.KindFatal},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := ToStatus(c.err)
			if got := status.Code(st); got != c.code {
				t.Fatalf("code %v, want %v", got, c.code)
			}
			back := FromStatus(st)
			if got := spi.KindOf(back); got != c.kind {
				t.Fatalf("kind %v, want %v", got, c.kind)
			}
			if back.Error() != c.err.Error() {
				t.Fatalf("message %q, want %q", back.Error(), c.err.Error())
			}
		})
	}
	// Codes from a plugin in another language, without ErrorInfo.
	for code, kind := range map[codes.Code]spi.Kind{
		codes.Unavailable: spi.KindRetryable, codes.Aborted: spi.KindRetryable, codes.ResourceExhausted: spi.KindRetryable,
		codes.DeadlineExceeded: spi.KindRetryable, codes.InvalidArgument: spi.KindInvalidArgument,
		codes.NotFound: spi.KindFatal, codes.Unknown: spi.KindFatal, codes.PermissionDenied: spi.KindFatal,
	} {
		if got := spi.KindOf(FromStatus(status.Error(code, "x"))); got != kind {
			t.Errorf("code %v: kind %v, want %v", code, got, kind)
		}
	}
	// ErrorInfo takes precedence over the code.
	st, _ := status.New(codes.Internal, "throttled").WithDetails(&errdetails.ErrorInfo{Domain: errorDomain, Reason: reasonRetryable})
	if !spi.IsRetryable(FromStatus(st.Err())) {
		t.Errorf("ErrorInfo RETRYABLE on INTERNAL not honoured")
	}
}

// memConnector is a small source+sink used to exercise the adapters over a
// real gRPC connection.
type memConnector struct {
	docs    map[string]bson.Raw
	failNow error
}

func (m *memConnector) Configure(_ context.Context, cfg spi.Config) error {
	if cfg.URL == "bad" {
		return spi.InvalidArgument("url %q: expected mem://", cfg.URL)
	}
	m.docs = map[string]bson.Raw{}
	return nil
}
func (m *memConnector) Info(context.Context) (spi.Info, error) {
	return spi.Info{ID: "mem", DBType: "mem", Source: &spi.SourceCapabilities{GetByIDs: true, Updates: true}, Sink: &spi.SinkCapabilities{}}, nil
}
func (m *memConnector) NamespaceMetadata(context.Context, string) (spi.NamespaceMetadata, error) {
	return spi.NamespaceMetadata{Count: uint64(len(m.docs))}, nil
}
func (m *memConnector) GeneratePlan(context.Context, spi.PlanRequest) (spi.Plan, error) {
	return spi.Plan{Partitions: []spi.Partition{{Namespace: "a.b"}}}, nil
}
func (m *memConnector) ListData(context.Context, spi.Partition, []byte) (spi.Page, error) {
	if m.failNow != nil {
		return spi.Page{}, m.failNow
	}
	var docs []bson.Raw
	for _, d := range m.docs {
		docs = append(docs, d)
	}
	return spi.Page{Docs: docs}, nil
}
func (m *memConnector) StreamUpdates(ctx context.Context, req spi.StreamRequest, send func(spi.UpdateBatch) error) error {
	if err := send(spi.UpdateBatch{Namespace: "a.b", NextCursor: []byte{1}, SourceTime: time.Unix(1, 0),
		Updates: []spi.Update{{ID: bson.RawValue{Type: bson.TypeInt32, Value: []byte{1, 0, 0, 0}}, Type: spi.UpdateDelete}}}); err != nil {
		return err
	}
	<-ctx.Done()
	return ctx.Err()
}
func (m *memConnector) GetByIDs(_ context.Context, _ string, ids []bson.RawValue) ([]bson.Raw, error) {
	out := make([]bson.Raw, len(ids))
	for i, id := range ids {
		out[i] = m.docs[id.String()]
	}
	return out, nil
}
func (m *memConnector) WriteData(_ context.Context, _ string, docs []bson.Raw) error {
	for _, d := range docs {
		m.docs[d.Lookup("_id").String()] = d
	}
	return nil
}
func (m *memConnector) WriteUpdates(context.Context, string, []spi.Update) error { return nil }

func dialMem(t *testing.T, impl spi.Connector) *ConnectorClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(ServerOptions()...)
	dsyncv1.RegisterConnectorServiceServer(srv, NewConnectorServer(impl))
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///mem", append(DialOptions(),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); srv.Stop() })
	return NewConnectorClient(conn)
}

func TestAdaptersOverGRPC(t *testing.T) {
	ctx := context.Background()
	m := &memConnector{}
	c := dialMem(t, m)

	if _, err := c.Info(ctx); spi.KindOf(err) != spi.KindFailedPrecondition {
		t.Fatalf("Info before Configure: %v, want failed precondition", err)
	}
	err := c.Configure(ctx, spi.Config{URL: "bad"})
	if spi.KindOf(err) != spi.KindInvalidArgument || err.Error() != `url "bad": expected mem://` {
		t.Fatalf("Configure(bad) = %v (kind %v)", err, spi.KindOf(err))
	}
	if err := c.Configure(ctx, spi.Config{URL: "mem://"}); err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil || info.ID != "mem" || info.ProtocolVersion != 1 || len(info.Source.DataTypes) != 2 {
		t.Fatalf("Info = %+v, %v", info, err)
	}
	doc := mustDoc(t, bson.D{{Key: "_id", Value: int32(5)}, {Key: "x", Value: "y"}})
	if err := c.WriteData(ctx, "a.b", []bson.Raw{doc}); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetByIDs(ctx, "a.b", []bson.RawValue{rawValue(t, int32(9)), rawValue(t, int32(5))})
	if err != nil || got[0] != nil || string(got[1]) != string(doc) {
		t.Fatalf("GetByIDs = %v, %v", got, err)
	}
	m.failNow = spi.Retryable(errors.New("server stepped down"))
	if _, err := c.ListData(ctx, spi.Partition{Namespace: "a.b"}, nil); !spi.IsRetryable(err) || err.Error() != "server stepped down" {
		t.Fatalf("ListData error = %v, want retryable", err)
	}
	m.failNow = nil

	// Streams: a batch arrives, then cancellation returns promptly.
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- c.StreamUpdates(sctx, spi.StreamRequest{}, func(b spi.UpdateBatch) error {
			if b.Namespace != "a.b" || len(b.Updates) != 1 || !b.SourceTime.Equal(time.Unix(1, 0)) {
				t.Errorf("batch = %+v", b)
			}
			cancel()
			return nil
		})
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("StreamUpdates after cancel = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("StreamUpdates did not return after cancel")
	}
	if err := c.StreamLSN(ctx, spi.StreamRequest{}, func(uint64) error { return nil }); spi.KindOf(err) != spi.KindUnimplemented {
		t.Fatalf("StreamLSN on a connector without it = %v, want unimplemented", err)
	}
}

// overclaiming says it streams LSNs without implementing it.
type overclaiming struct{ memConnector }

func (o *overclaiming) Info(context.Context) (spi.Info, error) {
	return spi.Info{ID: "x", Source: &spi.SourceCapabilities{LSNStream: true}}, nil
}

func TestInfoRejectsUnbackedCapability(t *testing.T) {
	c := dialMem(t, &overclaiming{})
	ctx := context.Background()
	if err := c.Configure(ctx, spi.Config{URL: "mem://"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Info(ctx); err == nil || spi.KindOf(err) != spi.KindFatal {
		t.Fatalf("Info = %v, want fatal capability error", err)
	}
}

func BenchmarkEncodeID(b *testing.B) {
	id := rawValue(b, int64(12345))
	for b.Loop() {
		if _, err := EncodeID(id, spi.DataTypeBSON); err != nil {
			b.Fatal(err)
		}
	}
}
