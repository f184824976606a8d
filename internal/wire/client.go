package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync/atomic"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/grpc"

	"github.com/dsyncio/dsync/internal/spi"
	dsyncv1 "github.com/dsyncio/dsync/proto/dsync/v1"
)

// ConnectorClient is the host side of ConnectorService. It implements
// spi.Source, spi.Sink and every optional source interface; calls the plugin
// does not implement fail with spi.KindUnimplemented. Errors are converted
// with FromStatus. Documents are always BSON on this side: when the plugin
// only speaks JSON (as learned from Info), the client converts.
type ConnectorClient struct {
	c dsyncv1.ConnectorServiceClient
	// sourceType and sinkType are the negotiated data types.
	sourceType atomic.Int32
	sinkType   atomic.Int32
}

var (
	_ spi.Source         = (*ConnectorClient)(nil)
	_ spi.Sink           = (*ConnectorClient)(nil)
	_ spi.UpdateStreamer = (*ConnectorClient)(nil)
	_ spi.UpdateAcker    = (*ConnectorClient)(nil)
	_ spi.LSNStreamer    = (*ConnectorClient)(nil)
	_ spi.IDGetter       = (*ConnectorClient)(nil)
	_ spi.IndexLister    = (*ConnectorClient)(nil)
	_ spi.IndexCreator   = (*ConnectorClient)(nil)
)

// NewConnectorClient returns a client over conn.
func NewConnectorClient(conn grpc.ClientConnInterface) *ConnectorClient {
	c := &ConnectorClient{c: dsyncv1.NewConnectorServiceClient(conn)}
	c.sourceType.Store(int32(spi.DataTypeBSON))
	c.sinkType.Store(int32(spi.DataTypeBSON))
	return c
}

func pickType(supported []spi.DataType) spi.DataType {
	if len(supported) == 0 || slices.Contains(supported, spi.DataTypeBSON) {
		return spi.DataTypeBSON
	}
	return supported[0]
}

// Configure implements spi.Connector.
func (c *ConnectorClient) Configure(ctx context.Context, cfg spi.Config) error {
	_, err := c.c.Configure(ctx, &dsyncv1.ConfigureRequest{Url: cfg.URL, Settings: cfg.Settings})
	return FromStatus(err)
}

// Info implements spi.Connector. It also picks the data types used on later
// calls: BSON when the plugin offers it, else the plugin's first type.
func (c *ConnectorClient) Info(ctx context.Context) (spi.Info, error) {
	resp, err := c.c.GetInfo(ctx, &dsyncv1.GetInfoRequest{})
	if err != nil {
		return spi.Info{}, FromStatus(err)
	}
	info := infoFromProto(resp)
	if info.Source != nil {
		c.sourceType.Store(int32(pickType(info.Source.DataTypes)))
	}
	if info.Sink != nil {
		c.sinkType.Store(int32(pickType(info.Sink.DataTypes)))
	}
	return info, nil
}

func (c *ConnectorClient) srcType() spi.DataType { return spi.DataType(c.sourceType.Load()) }
func (c *ConnectorClient) snkType() spi.DataType { return spi.DataType(c.sinkType.Load()) }

// NamespaceMetadata implements spi.Source.
func (c *ConnectorClient) NamespaceMetadata(ctx context.Context, ns string) (spi.NamespaceMetadata, error) {
	resp, err := c.c.GetNamespaceMetadata(ctx, &dsyncv1.GetNamespaceMetadataRequest{Namespace: ns})
	if err != nil {
		return spi.NamespaceMetadata{}, FromStatus(err)
	}
	return spi.NamespaceMetadata{Count: resp.GetCount(), SizeBytes: resp.GetSizeBytes()}, nil
}

// GeneratePlan implements spi.Source.
func (c *ConnectorClient) GeneratePlan(ctx context.Context, req spi.PlanRequest) (spi.Plan, error) {
	resp, err := c.c.GeneratePlan(ctx, &dsyncv1.GeneratePlanRequest{
		Namespaces:  req.Namespaces,
		InitialSync: req.InitialSync,
		Updates:     req.Updates,
	})
	if err != nil {
		return spi.Plan{}, FromStatus(err)
	}
	return planFromProto(resp), nil
}

// ListData implements spi.Source.
func (c *ConnectorClient) ListData(ctx context.Context, p spi.Partition, cursor []byte) (spi.Page, error) {
	dt := c.srcType()
	resp, err := c.c.ListData(ctx, &dsyncv1.ListDataRequest{
		Partition: partitionToProto(p),
		Cursor:    cursor,
		DataType:  dataTypeToProto(dt),
	})
	if err != nil {
		return spi.Page{}, FromStatus(err)
	}
	docs, err := decodeDocs(resp.GetData(), dt)
	if err != nil {
		return spi.Page{}, spi.Fatal(fmt.Errorf("plugin returned a bad document: %w", err))
	}
	return spi.Page{Docs: docs, NextCursor: resp.GetNextCursor()}, nil
}

// errStreamEnded is returned when a plugin ends an update stream on its own,
// which the protocol forbids; the caller reopens the stream.
var errStreamEnded = errors.New("plugin ended the stream")

// StreamUpdates implements spi.UpdateStreamer.
func (c *ConnectorClient) StreamUpdates(ctx context.Context, req spi.StreamRequest, send func(spi.UpdateBatch) error) error {
	// Returning early (send failed, bad update) must close the stream.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dt := c.srcType()
	stream, err := c.c.StreamUpdates(ctx, &dsyncv1.StreamUpdatesRequest{
		Namespaces: req.Namespaces,
		Cursor:     req.Cursor,
		DataType:   dataTypeToProto(dt),
	})
	if err != nil {
		return FromStatus(err)
	}
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return spi.Retryable(errStreamEnded)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return FromStatus(err)
		}
		b, err := batchFromProto(resp, dt)
		if err != nil {
			return spi.Fatal(fmt.Errorf("plugin sent a bad update: %w", err))
		}
		if err := send(b); err != nil {
			return err
		}
	}
}

// AckUpdates implements spi.UpdateAcker.
func (c *ConnectorClient) AckUpdates(ctx context.Context, cursor []byte) error {
	_, err := c.c.AckUpdates(ctx, &dsyncv1.AckUpdatesRequest{Cursor: cursor})
	return FromStatus(err)
}

// StreamLSN implements spi.LSNStreamer.
func (c *ConnectorClient) StreamLSN(ctx context.Context, req spi.StreamRequest, send func(uint64) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.c.StreamLSN(ctx, &dsyncv1.StreamLSNRequest{Namespaces: req.Namespaces, Cursor: req.Cursor})
	if err != nil {
		return FromStatus(err)
	}
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return spi.Retryable(errStreamEnded)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return FromStatus(err)
		}
		if err := send(resp.GetLsn()); err != nil {
			return err
		}
	}
}

// GetByIDs implements spi.IDGetter.
func (c *ConnectorClient) GetByIDs(ctx context.Context, ns string, ids []bson.RawValue) ([]bson.Raw, error) {
	dt := c.srcType()
	req := &dsyncv1.GetByIdsRequest{Namespace: ns, DataType: dataTypeToProto(dt), Ids: make([][]byte, len(ids))}
	for i, id := range ids {
		b, err := EncodeID(id, dt)
		if err != nil {
			return nil, spi.Fatal(err)
		}
		req.Ids[i] = b
	}
	resp, err := c.c.GetByIds(ctx, req)
	if err != nil {
		return nil, FromStatus(err)
	}
	if len(resp.GetData()) != len(ids) {
		return nil, spi.Fatal(fmt.Errorf("plugin returned %d documents for %d ids", len(resp.GetData()), len(ids)))
	}
	out := make([]bson.Raw, len(ids))
	for i, b := range resp.GetData() {
		if len(b) == 0 {
			continue
		}
		d, err := DecodeDoc(b, dt)
		if err != nil {
			return nil, spi.Fatal(fmt.Errorf("plugin returned a bad document: %w", err))
		}
		out[i] = d
	}
	return out, nil
}

// WriteData implements spi.Sink.
func (c *ConnectorClient) WriteData(ctx context.Context, ns string, docs []bson.Raw) error {
	dt := c.snkType()
	data, err := encodeDocs(docs, dt)
	if err != nil {
		return spi.Fatal(err)
	}
	_, err = c.c.WriteData(ctx, &dsyncv1.WriteDataRequest{Namespace: ns, Data: data, DataType: dataTypeToProto(dt)})
	return FromStatus(err)
}

// WriteUpdates implements spi.Sink.
func (c *ConnectorClient) WriteUpdates(ctx context.Context, ns string, ups []spi.Update) error {
	dt := c.snkType()
	pus, err := updatesToProto(ups, dt)
	if err != nil {
		return spi.Fatal(err)
	}
	_, err = c.c.WriteUpdates(ctx, &dsyncv1.WriteUpdatesRequest{Namespace: ns, Updates: pus, DataType: dataTypeToProto(dt)})
	return FromStatus(err)
}

// ListIndexes implements spi.IndexLister. Index specifications are always
// BSON on the wire.
func (c *ConnectorClient) ListIndexes(ctx context.Context, ns string) ([]bson.Raw, error) {
	resp, err := c.c.ListIndexes(ctx, &dsyncv1.ListIndexesRequest{Namespace: ns})
	if err != nil {
		return nil, FromStatus(err)
	}
	idx, err := decodeDocs(resp.GetIndexes(), spi.DataTypeBSON)
	if err != nil {
		return nil, spi.Fatal(fmt.Errorf("plugin returned a bad index specification: %w", err))
	}
	return idx, nil
}

// CreateIndexes implements spi.IndexCreator.
func (c *ConnectorClient) CreateIndexes(ctx context.Context, ns string, indexes []bson.Raw) error {
	out := make([][]byte, len(indexes))
	for i, d := range indexes {
		out[i] = d
	}
	_, err := c.c.CreateIndexes(ctx, &dsyncv1.CreateIndexesRequest{Namespace: ns, Indexes: out})
	return FromStatus(err)
}

// TransformClient is the host side of TransformService; it implements
// spi.Transform with BSON on this side.
type TransformClient struct {
	c  dsyncv1.TransformServiceClient
	dt atomic.Int32
}

var _ spi.Transform = (*TransformClient)(nil)

// NewTransformClient returns a client over conn.
func NewTransformClient(conn grpc.ClientConnInterface) *TransformClient {
	t := &TransformClient{c: dsyncv1.NewTransformServiceClient(conn)}
	t.dt.Store(int32(spi.DataTypeBSON))
	return t
}

// Configure implements spi.Transform; it also negotiates the data type.
func (t *TransformClient) Configure(ctx context.Context, spec string) error {
	info, err := t.c.GetTransformInfo(ctx, &dsyncv1.GetTransformInfoRequest{})
	if err != nil {
		return FromStatus(err)
	}
	accepted := dataTypesFromProto(info.GetAcceptedDataTypes())
	produced := dataTypesFromProto(info.GetProducedDataTypes())
	dt := pickType(accepted)
	if len(produced) > 0 && !slices.Contains(produced, dt) {
		return spi.Fatal(fmt.Errorf("transform accepts %v but produces %v: no common data type", accepted, produced))
	}
	t.dt.Store(int32(dt))
	_, err = t.c.Configure(ctx, &dsyncv1.TransformServiceConfigureRequest{Spec: spec})
	return FromStatus(err)
}

// TransformData implements spi.Transform.
func (t *TransformClient) TransformData(ctx context.Context, ns string, docs []bson.Raw) ([]spi.DataBatch, error) {
	dt := spi.DataType(t.dt.Load())
	data, err := encodeDocs(docs, dt)
	if err != nil {
		return nil, spi.Fatal(err)
	}
	resp, err := t.c.Transform(ctx, &dsyncv1.TransformRequest{
		Namespace: ns, Data: data, DataType: dataTypeToProto(dt), OutputDataType: dataTypeToProto(dt),
	})
	if err != nil {
		return nil, FromStatus(err)
	}
	out := make([]spi.DataBatch, 0, len(resp.GetBatches()))
	for _, b := range resp.GetBatches() {
		if len(b.GetUpdates()) > 0 {
			return nil, spi.Fatal(errors.New("transform returned updates for documents"))
		}
		docs, err := decodeDocs(b.GetData(), dt)
		if err != nil {
			return nil, spi.Fatal(fmt.Errorf("transform returned a bad document: %w", err))
		}
		out = append(out, spi.DataBatch{Namespace: b.GetNamespace(), Docs: docs})
	}
	return out, nil
}

// TransformUpdates implements spi.Transform.
func (t *TransformClient) TransformUpdates(ctx context.Context, ns string, ups []spi.Update) ([]spi.UpdatesBatch, error) {
	dt := spi.DataType(t.dt.Load())
	pus, err := updatesToProto(ups, dt)
	if err != nil {
		return nil, spi.Fatal(err)
	}
	resp, err := t.c.Transform(ctx, &dsyncv1.TransformRequest{
		Namespace: ns, Updates: pus, DataType: dataTypeToProto(dt), OutputDataType: dataTypeToProto(dt),
	})
	if err != nil {
		return nil, FromStatus(err)
	}
	out := make([]spi.UpdatesBatch, 0, len(resp.GetBatches()))
	for _, b := range resp.GetBatches() {
		if len(b.GetData()) > 0 {
			return nil, spi.Fatal(errors.New("transform returned documents for updates"))
		}
		ups, err := updatesFromProto(b.GetUpdates(), dt)
		if err != nil {
			return nil, spi.Fatal(fmt.Errorf("transform returned a bad update: %w", err))
		}
		out = append(out, spi.UpdatesBatch{Namespace: b.GetNamespace(), Updates: ups})
	}
	return out, nil
}
