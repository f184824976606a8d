package wire

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/dsyncio/dsync/internal/spi"
	dsyncv1 "github.com/dsyncio/dsync/proto/dsync/v1"
)

// endlessStreams sends batches and LSNs until its context ends, then
// reports that it ended.
type endlessStreams struct {
	dsyncv1.UnimplementedConnectorServiceServer
	ended chan string
}

func (s *endlessStreams) StreamUpdates(_ *dsyncv1.StreamUpdatesRequest, stream dsyncv1.ConnectorService_StreamUpdatesServer) error {
	defer func() { s.ended <- "StreamUpdates" }()
	for stream.Context().Err() == nil {
		if err := stream.Send(&dsyncv1.StreamUpdatesResponse{NextCursor: []byte("c")}); err != nil {
			return err
		}
		time.Sleep(time.Millisecond)
	}
	return stream.Context().Err()
}

func (s *endlessStreams) StreamLSN(_ *dsyncv1.StreamLSNRequest, stream dsyncv1.ConnectorService_StreamLSNServer) error {
	defer func() { s.ended <- "StreamLSN" }()
	for stream.Context().Err() == nil {
		if err := stream.Send(&dsyncv1.StreamLSNResponse{Lsn: 1}); err != nil {
			return err
		}
		time.Sleep(time.Millisecond)
	}
	return stream.Context().Err()
}

// TestStreamEndsWhenSendFails: when the caller's send callback fails, the
// client returns its error and closes the stream, though the caller's
// context is still live; the server side sees the stream end.
func TestStreamEndsWhenSendFails(t *testing.T) {
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	impl := &endlessStreams{ended: make(chan string, 2)}
	dsyncv1.RegisterConnectorServiceServer(srv, impl)
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) { return lis.Dial() }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); srv.Stop() })
	c := NewConnectorClient(conn)
	stop := errors.New("caller stops")
	ctx := t.Context()

	if err := c.StreamUpdates(ctx, spi.StreamRequest{}, func(spi.UpdateBatch) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("StreamUpdates = %v, want the send error", err)
	}
	if err := c.StreamLSN(ctx, spi.StreamRequest{}, func(uint64) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("StreamLSN = %v, want the send error", err)
	}
	for range 2 {
		select {
		case name := <-impl.ended:
			t.Logf("server side of %s ended", name)
		case <-time.After(5 * time.Second):
			t.Fatal("a server stream is still running after the client returned: the client did not close it")
		}
	}
}
