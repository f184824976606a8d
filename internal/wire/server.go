package wire

import (
	"context"
	"fmt"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/internal/spi"
	dsyncv1 "github.com/dsyncio/dsync/proto/dsync/v1"
)

// ConnectorServer serves an spi.Connector over gRPC. Optional interfaces
// (spi.Source, spi.Sink, spi.UpdateStreamer, ...) are discovered by type
// assertion; calls the connector does not implement fail with UNIMPLEMENTED.
type ConnectorServer struct {
	dsyncv1.UnimplementedConnectorServiceServer
	impl spi.Connector

	mu         sync.RWMutex
	configured bool
}

// NewConnectorServer returns a server for impl.
func NewConnectorServer(impl spi.Connector) *ConnectorServer {
	return &ConnectorServer{impl: impl}
}

func (s *ConnectorServer) ready() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.configured {
		return spi.FailedPrecondition(spi.ErrNotConfigured)
	}
	return nil
}

func (s *ConnectorServer) source(call string) (spi.Source, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	src, ok := s.impl.(spi.Source)
	if !ok {
		return nil, spi.Unimplemented(call + " (not a source)")
	}
	return src, nil
}

func (s *ConnectorServer) sink(call string) (spi.Sink, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	snk, ok := s.impl.(spi.Sink)
	if !ok {
		return nil, spi.Unimplemented(call + " (not a sink)")
	}
	return snk, nil
}

// Configure implements dsyncv1.ConnectorServiceServer.
func (s *ConnectorServer) Configure(ctx context.Context, req *dsyncv1.ConfigureRequest) (*dsyncv1.ConfigureResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.impl.Configure(ctx, spi.Config{URL: req.GetUrl(), Settings: req.GetSettings()}); err != nil {
		return nil, ToStatus(err)
	}
	s.configured = true
	return &dsyncv1.ConfigureResponse{}, nil
}

// GetInfo implements dsyncv1.ConnectorServiceServer. It checks that every
// claimed capability is backed by the matching interface, so a connector
// cannot advertise what it does not implement.
func (s *ConnectorServer) GetInfo(ctx context.Context, _ *dsyncv1.GetInfoRequest) (*dsyncv1.GetInfoResponse, error) {
	if err := s.ready(); err != nil {
		return nil, ToStatus(err)
	}
	info, err := s.impl.Info(ctx)
	if err != nil {
		return nil, ToStatus(err)
	}
	if err := checkCapabilities(s.impl, info); err != nil {
		return nil, ToStatus(err)
	}
	both := []spi.DataType{spi.DataTypeBSON, spi.DataTypeJSON}
	if info.Source != nil {
		src := *info.Source
		src.DataTypes = both
		info.Source = &src
	}
	if info.Sink != nil {
		info.Sink = &spi.SinkCapabilities{DataTypes: both, Indexes: info.Sink.Indexes}
	}
	return infoToProto(info), nil
}

func checkCapabilities(impl spi.Connector, info spi.Info) error {
	type check struct {
		claimed bool
		ok      bool
		what    string
	}
	_, isSource := impl.(spi.Source)
	_, isSink := impl.(spi.Sink)
	checks := []check{
		{info.Source != nil, isSource, "source capability without implementing spi.Source"},
		{info.Sink != nil, isSink, "sink capability without implementing spi.Sink"},
	}
	if src := info.Source; src != nil {
		_, streamer := impl.(spi.UpdateStreamer)
		_, getter := impl.(spi.IDGetter)
		_, acker := impl.(spi.UpdateAcker)
		_, lsn := impl.(spi.LSNStreamer)
		_, lister := impl.(spi.IndexLister)
		checks = append(checks,
			check{src.Indexes, lister, "indexes capability without implementing IndexLister"},
			check{src.Updates, streamer, "updates capability without implementing UpdateStreamer"},
			check{src.GetByIDs, getter, "get-by-ids capability without implementing IDGetter"},
			check{src.AckUpdates, acker, "ack-updates capability without implementing UpdateAcker"},
			check{src.LSNStream, lsn, "lsn-stream capability without implementing LSNStreamer"},
		)
	}
	if snk := info.Sink; snk != nil {
		_, creator := impl.(spi.IndexCreator)
		checks = append(checks, check{snk.Indexes, creator, "sink indexes capability without implementing IndexCreator"})
	}
	for _, c := range checks {
		if c.claimed && !c.ok {
			return spi.Fatal(fmt.Errorf("connector %T claims a %s", impl, c.what))
		}
	}
	return nil
}

// GetNamespaceMetadata implements dsyncv1.ConnectorServiceServer.
func (s *ConnectorServer) GetNamespaceMetadata(ctx context.Context, req *dsyncv1.GetNamespaceMetadataRequest) (*dsyncv1.GetNamespaceMetadataResponse, error) {
	src, err := s.source("GetNamespaceMetadata")
	if err != nil {
		return nil, ToStatus(err)
	}
	md, err := src.NamespaceMetadata(ctx, req.GetNamespace())
	if err != nil {
		return nil, ToStatus(err)
	}
	return &dsyncv1.GetNamespaceMetadataResponse{Count: md.Count, SizeBytes: md.SizeBytes}, nil
}

// GeneratePlan implements dsyncv1.ConnectorServiceServer.
func (s *ConnectorServer) GeneratePlan(ctx context.Context, req *dsyncv1.GeneratePlanRequest) (*dsyncv1.GeneratePlanResponse, error) {
	src, err := s.source("GeneratePlan")
	if err != nil {
		return nil, ToStatus(err)
	}
	plan, err := src.GeneratePlan(ctx, spi.PlanRequest{
		Namespaces:  req.GetNamespaces(),
		InitialSync: req.GetInitialSync(),
		Updates:     req.GetUpdates(),
	})
	if err != nil {
		return nil, ToStatus(err)
	}
	return planToProto(plan), nil
}

// ListData implements dsyncv1.ConnectorServiceServer.
func (s *ConnectorServer) ListData(ctx context.Context, req *dsyncv1.ListDataRequest) (*dsyncv1.ListDataResponse, error) {
	src, err := s.source("ListData")
	if err != nil {
		return nil, ToStatus(err)
	}
	dt, err := dataTypeFromProto(req.GetDataType())
	if err != nil {
		return nil, ToStatus(err)
	}
	page, err := src.ListData(ctx, partitionFromProto(req.GetPartition()), req.GetCursor())
	if err != nil {
		return nil, ToStatus(err)
	}
	data, err := encodeDocs(page.Docs, dt)
	if err != nil {
		return nil, ToStatus(err)
	}
	return &dsyncv1.ListDataResponse{Data: data, NextCursor: page.NextCursor}, nil
}

// StreamUpdates implements dsyncv1.ConnectorServiceServer.
func (s *ConnectorServer) StreamUpdates(req *dsyncv1.StreamUpdatesRequest, stream dsyncv1.ConnectorService_StreamUpdatesServer) error {
	src, err := s.source("StreamUpdates")
	if err != nil {
		return ToStatus(err)
	}
	streamer, ok := src.(spi.UpdateStreamer)
	if !ok {
		return ToStatus(spi.Unimplemented("StreamUpdates"))
	}
	dt, err := dataTypeFromProto(req.GetDataType())
	if err != nil {
		return ToStatus(err)
	}
	err = streamer.StreamUpdates(stream.Context(), spi.StreamRequest{Namespaces: req.GetNamespaces(), Cursor: req.GetCursor()},
		func(b spi.UpdateBatch) error {
			resp, err := batchToProto(b, dt)
			if err != nil {
				return spi.Fatal(err)
			}
			return stream.Send(resp)
		})
	if err == nil {
		// The protocol says a stream never ends by itself.
		err = spi.Retryable(fmt.Errorf("update stream ended"))
	}
	return ToStatus(err)
}

// AckUpdates implements dsyncv1.ConnectorServiceServer. A source without
// UpdateAcker accepts acknowledgements and ignores them.
func (s *ConnectorServer) AckUpdates(ctx context.Context, req *dsyncv1.AckUpdatesRequest) (*dsyncv1.AckUpdatesResponse, error) {
	src, err := s.source("AckUpdates")
	if err != nil {
		return nil, ToStatus(err)
	}
	if acker, ok := src.(spi.UpdateAcker); ok {
		if err := acker.AckUpdates(ctx, req.GetCursor()); err != nil {
			return nil, ToStatus(err)
		}
	}
	return &dsyncv1.AckUpdatesResponse{}, nil
}

// StreamLSN implements dsyncv1.ConnectorServiceServer.
func (s *ConnectorServer) StreamLSN(req *dsyncv1.StreamLSNRequest, stream dsyncv1.ConnectorService_StreamLSNServer) error {
	src, err := s.source("StreamLSN")
	if err != nil {
		return ToStatus(err)
	}
	lsn, ok := src.(spi.LSNStreamer)
	if !ok {
		return ToStatus(spi.Unimplemented("StreamLSN"))
	}
	err = lsn.StreamLSN(stream.Context(), spi.StreamRequest{Namespaces: req.GetNamespaces(), Cursor: req.GetCursor()},
		func(n uint64) error { return stream.Send(&dsyncv1.StreamLSNResponse{Lsn: n}) })
	return ToStatus(err)
}

// GetByIds implements dsyncv1.ConnectorServiceServer.
func (s *ConnectorServer) GetByIds(ctx context.Context, req *dsyncv1.GetByIdsRequest) (*dsyncv1.GetByIdsResponse, error) {
	src, err := s.source("GetByIds")
	if err != nil {
		return nil, ToStatus(err)
	}
	getter, ok := src.(spi.IDGetter)
	if !ok {
		return nil, ToStatus(spi.Unimplemented("GetByIds"))
	}
	dt, err := dataTypeFromProto(req.GetDataType())
	if err != nil {
		return nil, ToStatus(err)
	}
	ids := make([]bson.RawValue, len(req.GetIds()))
	for i, b := range req.GetIds() {
		if ids[i], err = DecodeID(b, dt); err != nil {
			return nil, ToStatus(fmt.Errorf("id %d: %w", i, err))
		}
	}
	docs, err := getter.GetByIDs(ctx, req.GetNamespace(), ids)
	if err != nil {
		return nil, ToStatus(err)
	}
	if len(docs) != len(ids) {
		return nil, ToStatus(spi.Fatal(fmt.Errorf("GetByIDs returned %d documents for %d ids", len(docs), len(ids))))
	}
	data := make([][]byte, len(docs))
	for i, d := range docs {
		if d == nil {
			continue
		}
		if data[i], err = EncodeDoc(d, dt); err != nil {
			return nil, ToStatus(err)
		}
	}
	return &dsyncv1.GetByIdsResponse{Data: data}, nil
}

// WriteData implements dsyncv1.ConnectorServiceServer.
func (s *ConnectorServer) WriteData(ctx context.Context, req *dsyncv1.WriteDataRequest) (*dsyncv1.WriteDataResponse, error) {
	snk, err := s.sink("WriteData")
	if err != nil {
		return nil, ToStatus(err)
	}
	dt, err := dataTypeFromProto(req.GetDataType())
	if err != nil {
		return nil, ToStatus(err)
	}
	docs, err := decodeDocs(req.GetData(), dt)
	if err != nil {
		return nil, ToStatus(err)
	}
	if err := snk.WriteData(ctx, req.GetNamespace(), docs); err != nil {
		return nil, ToStatus(err)
	}
	return &dsyncv1.WriteDataResponse{}, nil
}

// WriteUpdates implements dsyncv1.ConnectorServiceServer.
func (s *ConnectorServer) WriteUpdates(ctx context.Context, req *dsyncv1.WriteUpdatesRequest) (*dsyncv1.WriteUpdatesResponse, error) {
	snk, err := s.sink("WriteUpdates")
	if err != nil {
		return nil, ToStatus(err)
	}
	dt, err := dataTypeFromProto(req.GetDataType())
	if err != nil {
		return nil, ToStatus(err)
	}
	ups, err := updatesFromProto(req.GetUpdates(), dt)
	if err != nil {
		return nil, ToStatus(err)
	}
	if err := snk.WriteUpdates(ctx, req.GetNamespace(), ups); err != nil {
		return nil, ToStatus(err)
	}
	return &dsyncv1.WriteUpdatesResponse{}, nil
}

// ListIndexes implements dsyncv1.ConnectorServiceServer.
func (s *ConnectorServer) ListIndexes(ctx context.Context, req *dsyncv1.ListIndexesRequest) (*dsyncv1.ListIndexesResponse, error) {
	src, err := s.source("ListIndexes")
	if err != nil {
		return nil, ToStatus(err)
	}
	lister, ok := src.(spi.IndexLister)
	if !ok {
		return nil, ToStatus(spi.Unimplemented("ListIndexes"))
	}
	idx, err := lister.ListIndexes(ctx, req.GetNamespace())
	if err != nil {
		return nil, ToStatus(err)
	}
	out := make([][]byte, len(idx))
	for i, d := range idx {
		out[i] = d
	}
	return &dsyncv1.ListIndexesResponse{Indexes: out}, nil
}

// CreateIndexes implements dsyncv1.ConnectorServiceServer.
func (s *ConnectorServer) CreateIndexes(ctx context.Context, req *dsyncv1.CreateIndexesRequest) (*dsyncv1.CreateIndexesResponse, error) {
	snk, err := s.sink("CreateIndexes")
	if err != nil {
		return nil, ToStatus(err)
	}
	creator, ok := snk.(spi.IndexCreator)
	if !ok {
		return nil, ToStatus(spi.Unimplemented("CreateIndexes"))
	}
	idx, err := decodeDocs(req.GetIndexes(), spi.DataTypeBSON)
	if err != nil {
		return nil, ToStatus(err)
	}
	if err := creator.CreateIndexes(ctx, req.GetNamespace(), idx); err != nil {
		return nil, ToStatus(err)
	}
	return &dsyncv1.CreateIndexesResponse{}, nil
}

// TransformServer serves an spi.Transform over gRPC.
type TransformServer struct {
	dsyncv1.UnimplementedTransformServiceServer
	impl spi.Transform

	mu         sync.RWMutex
	configured bool
}

// NewTransformServer returns a server for impl.
func NewTransformServer(impl spi.Transform) *TransformServer {
	return &TransformServer{impl: impl}
}

// GetTransformInfo implements dsyncv1.TransformServiceServer. Go transforms
// work on BSON; the adapter converts JSON in both directions.
func (s *TransformServer) GetTransformInfo(context.Context, *dsyncv1.GetTransformInfoRequest) (*dsyncv1.GetTransformInfoResponse, error) {
	both := dataTypesToProto([]spi.DataType{spi.DataTypeBSON, spi.DataTypeJSON})
	return &dsyncv1.GetTransformInfoResponse{AcceptedDataTypes: both, ProducedDataTypes: both}, nil
}

// Configure implements dsyncv1.TransformServiceServer.
func (s *TransformServer) Configure(ctx context.Context, req *dsyncv1.TransformServiceConfigureRequest) (*dsyncv1.TransformServiceConfigureResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.impl.Configure(ctx, req.GetSpec()); err != nil {
		return nil, ToStatus(err)
	}
	s.configured = true
	return &dsyncv1.TransformServiceConfigureResponse{}, nil
}

// Transform implements dsyncv1.TransformServiceServer.
func (s *TransformServer) Transform(ctx context.Context, req *dsyncv1.TransformRequest) (*dsyncv1.TransformResponse, error) {
	s.mu.RLock()
	configured := s.configured
	s.mu.RUnlock()
	if !configured {
		return nil, ToStatus(spi.FailedPrecondition(spi.ErrNotConfigured))
	}
	in, err := dataTypeFromProto(req.GetDataType())
	if err != nil {
		return nil, ToStatus(err)
	}
	out := in
	if req.GetOutputDataType() != dsyncv1.DataType_DATA_TYPE_UNSPECIFIED {
		if out, err = dataTypeFromProto(req.GetOutputDataType()); err != nil {
			return nil, ToStatus(err)
		}
	}
	resp := &dsyncv1.TransformResponse{}
	if len(req.GetUpdates()) > 0 {
		ups, err := updatesFromProto(req.GetUpdates(), in)
		if err != nil {
			return nil, ToStatus(err)
		}
		batches, err := s.impl.TransformUpdates(ctx, req.GetNamespace(), ups)
		if err != nil {
			return nil, ToStatus(err)
		}
		for _, b := range batches {
			pus, err := updatesToProto(b.Updates, out)
			if err != nil {
				return nil, ToStatus(err)
			}
			resp.Batches = append(resp.Batches, &dsyncv1.TransformedBatch{Namespace: b.Namespace, Updates: pus})
		}
		return resp, nil
	}
	docs, err := decodeDocs(req.GetData(), in)
	if err != nil {
		return nil, ToStatus(err)
	}
	batches, err := s.impl.TransformData(ctx, req.GetNamespace(), docs)
	if err != nil {
		return nil, ToStatus(err)
	}
	for _, b := range batches {
		data, err := encodeDocs(b.Docs, out)
		if err != nil {
			return nil, ToStatus(err)
		}
		resp.Batches = append(resp.Batches, &dsyncv1.TransformedBatch{Namespace: b.Namespace, Data: data})
	}
	return resp, nil
}
