package wire

import (
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dsyncio/dsync/internal/spi"
	dsyncv1 "github.com/dsyncio/dsync/proto/dsync/v1"
)

// This file is the only place where protobuf types and spi types meet.

func dataTypeToProto(t spi.DataType) dsyncv1.DataType {
	switch t {
	case spi.DataTypeJSON:
		return dsyncv1.DataType_DATA_TYPE_JSON
	default:
		return dsyncv1.DataType_DATA_TYPE_BSON
	}
}

func dataTypeFromProto(t dsyncv1.DataType) (spi.DataType, error) {
	switch t {
	case dsyncv1.DataType_DATA_TYPE_BSON, dsyncv1.DataType_DATA_TYPE_UNSPECIFIED:
		return spi.DataTypeBSON, nil
	case dsyncv1.DataType_DATA_TYPE_JSON:
		return spi.DataTypeJSON, nil
	}
	return 0, spi.InvalidArgument("unknown data type %d", t)
}

func dataTypesToProto(ts []spi.DataType) []dsyncv1.DataType {
	out := make([]dsyncv1.DataType, 0, len(ts))
	for _, t := range ts {
		out = append(out, dataTypeToProto(t))
	}
	return out
}

func dataTypesFromProto(ts []dsyncv1.DataType) []spi.DataType {
	out := make([]spi.DataType, 0, len(ts))
	for _, t := range ts {
		if dt, err := dataTypeFromProto(t); err == nil && t != dsyncv1.DataType_DATA_TYPE_UNSPECIFIED {
			out = append(out, dt)
		}
	}
	return out
}

// EncodeDoc encodes a BSON document in data type t.
func EncodeDoc(doc bson.Raw, t spi.DataType) ([]byte, error) {
	if t != spi.DataTypeJSON {
		return doc, nil
	}
	b, err := marshalRelaxed(doc)
	if err != nil {
		return nil, fmt.Errorf("encode document as extended JSON: %w", err)
	}
	return b, nil
}

// DecodeDoc decodes a document in data type t into BSON, validating it.
func DecodeDoc(b []byte, t spi.DataType) (bson.Raw, error) {
	if t != spi.DataTypeJSON {
		raw := bson.Raw(b)
		if err := raw.Validate(); err != nil {
			return nil, spi.InvalidArgument("invalid BSON document: %v", err)
		}
		return raw, nil
	}
	var d bson.D
	if err := bson.UnmarshalExtJSON(b, false, &d); err != nil {
		return nil, spi.InvalidArgument("invalid extended JSON document: %v", err)
	}
	raw, err := bson.Marshal(d)
	if err != nil {
		return nil, spi.InvalidArgument("invalid extended JSON document: %v", err)
	}
	return raw, nil
}

func encodeDocs(docs []bson.Raw, t spi.DataType) ([][]byte, error) {
	out := make([][]byte, len(docs))
	for i, d := range docs {
		b, err := EncodeDoc(d, t)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

func decodeDocs(bs [][]byte, t spi.DataType) ([]bson.Raw, error) {
	out := make([]bson.Raw, len(bs))
	for i, b := range bs {
		d, err := DecodeDoc(b, t)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		out[i] = d
	}
	return out, nil
}

// EncodeID encodes an id value as the one-field document {_id: value} in
// data type t.
func EncodeID(id bson.RawValue, t spi.DataType) ([]byte, error) {
	doc := bson.Raw(bsonDocWithID(id))
	return EncodeDoc(doc, t)
}

func bsonDocWithID(id bson.RawValue) []byte {
	// Hand-built to avoid reflection on a hot path: int32 length, element
	// (type byte, "_id\x00", value), trailing zero.
	n := 4 + 1 + 4 + len(id.Value) + 1
	b := make([]byte, 0, n)
	b = append(b, byte(n), byte(n>>8), byte(n>>16), byte(n>>24))
	b = append(b, byte(id.Type))
	b = append(b, "_id\x00"...)
	b = append(b, id.Value...)
	return append(b, 0)
}

// DecodeID decodes a {_id: value} document in data type t.
func DecodeID(b []byte, t spi.DataType) (bson.RawValue, error) {
	doc, err := DecodeDoc(b, t)
	if err != nil {
		return bson.RawValue{}, err
	}
	v, err := doc.LookupErr("_id")
	if err != nil {
		return bson.RawValue{}, spi.InvalidArgument("id document has no _id field")
	}
	return v, nil
}

var errNoID = errors.New("update has no id")

func updateTypeToProto(t spi.UpdateType) dsyncv1.UpdateType {
	return dsyncv1.UpdateType(t)
}

func updateToProto(u spi.Update, t spi.DataType) (*dsyncv1.Update, error) {
	if u.ID.Type == 0 {
		return nil, errNoID
	}
	id, err := EncodeID(u.ID, t)
	if err != nil {
		return nil, err
	}
	pu := &dsyncv1.Update{Id: id, Type: updateTypeToProto(u.Type), UnsetFields: u.Unset}
	if len(u.Doc) > 0 {
		if pu.Data, err = EncodeDoc(u.Doc, t); err != nil {
			return nil, err
		}
	}
	return pu, nil
}

func updateFromProto(pu *dsyncv1.Update, t spi.DataType) (spi.Update, error) {
	id, err := DecodeID(pu.GetId(), t)
	if err != nil {
		return spi.Update{}, err
	}
	u := spi.Update{ID: id, Type: spi.UpdateType(pu.GetType()), Unset: pu.GetUnsetFields()}
	switch u.Type {
	case spi.UpdateInsert, spi.UpdateReplace, spi.UpdateDelete, spi.UpdatePartial:
	default:
		return spi.Update{}, spi.InvalidArgument("update of id %s has unknown type %d", id, pu.GetType())
	}
	if len(pu.GetData()) > 0 {
		if u.Doc, err = DecodeDoc(pu.GetData(), t); err != nil {
			return spi.Update{}, err
		}
	}
	return u, nil
}

func updatesToProto(us []spi.Update, t spi.DataType) ([]*dsyncv1.Update, error) {
	out := make([]*dsyncv1.Update, len(us))
	for i, u := range us {
		pu, err := updateToProto(u, t)
		if err != nil {
			return nil, fmt.Errorf("update %d: %w", i, err)
		}
		out[i] = pu
	}
	return out, nil
}

func updatesFromProto(pus []*dsyncv1.Update, t spi.DataType) ([]spi.Update, error) {
	out := make([]spi.Update, len(pus))
	for i, pu := range pus {
		u, err := updateFromProto(pu, t)
		if err != nil {
			return nil, fmt.Errorf("update %d: %w", i, err)
		}
		out[i] = u
	}
	return out, nil
}

func infoToProto(info spi.Info) *dsyncv1.GetInfoResponse {
	resp := &dsyncv1.GetInfoResponse{
		Id:              info.ID,
		DbType:          info.DBType,
		Version:         info.Version,
		ProtocolVersion: spi.ProtocolVersion,
		Capabilities:    &dsyncv1.Capabilities{},
	}
	if s := info.Source; s != nil {
		resp.Capabilities.Source = &dsyncv1.SourceCapabilities{
			SupportedDataTypes: dataTypesToProto(s.DataTypes),
			MultiNamespacePlan: s.MultiNamespacePlan,
			DefaultPlan:        s.DefaultPlan,
			GetByIds:           s.GetByIDs,
			Updates:            s.Updates,
			AckUpdates:         s.AckUpdates,
			LsnStream:          s.LSNStream,
			Indexes:            s.Indexes,
		}
	}
	if s := info.Sink; s != nil {
		resp.Capabilities.Sink = &dsyncv1.SinkCapabilities{SupportedDataTypes: dataTypesToProto(s.DataTypes), Indexes: s.Indexes}
	}
	return resp
}

func infoFromProto(resp *dsyncv1.GetInfoResponse) spi.Info {
	info := spi.Info{
		ID:              resp.GetId(),
		DBType:          resp.GetDbType(),
		Version:         resp.GetVersion(),
		ProtocolVersion: resp.GetProtocolVersion(),
	}
	if s := resp.GetCapabilities().GetSource(); s != nil {
		info.Source = &spi.SourceCapabilities{
			DataTypes:          dataTypesFromProto(s.GetSupportedDataTypes()),
			MultiNamespacePlan: s.GetMultiNamespacePlan(),
			DefaultPlan:        s.GetDefaultPlan(),
			GetByIDs:           s.GetGetByIds(),
			Updates:            s.GetUpdates(),
			AckUpdates:         s.GetAckUpdates(),
			LSNStream:          s.GetLsnStream(),
			Indexes:            s.GetIndexes(),
		}
	}
	if s := resp.GetCapabilities().GetSink(); s != nil {
		info.Sink = &spi.SinkCapabilities{DataTypes: dataTypesFromProto(s.GetSupportedDataTypes()), Indexes: s.GetIndexes()}
	}
	return info
}

func partitionToProto(p spi.Partition) *dsyncv1.Partition {
	return &dsyncv1.Partition{Namespace: p.Namespace, Cursor: p.Cursor, EstimatedCount: p.EstimatedCount}
}

func partitionFromProto(p *dsyncv1.Partition) spi.Partition {
	return spi.Partition{Namespace: p.GetNamespace(), Cursor: p.GetCursor(), EstimatedCount: p.GetEstimatedCount()}
}

func planToProto(p spi.Plan) *dsyncv1.GeneratePlanResponse {
	resp := &dsyncv1.GeneratePlanResponse{}
	for _, part := range p.Partitions {
		resp.Partitions = append(resp.Partitions, partitionToProto(part))
	}
	for _, up := range p.UpdatesPartitions {
		resp.UpdatesPartitions = append(resp.UpdatesPartitions, &dsyncv1.UpdatesPartition{Namespaces: up.Namespaces, Cursor: up.Cursor})
	}
	return resp
}

func planFromProto(resp *dsyncv1.GeneratePlanResponse) spi.Plan {
	var p spi.Plan
	for _, part := range resp.GetPartitions() {
		p.Partitions = append(p.Partitions, partitionFromProto(part))
	}
	for _, up := range resp.GetUpdatesPartitions() {
		p.UpdatesPartitions = append(p.UpdatesPartitions, spi.UpdatesPartition{Namespaces: up.GetNamespaces(), Cursor: up.GetCursor()})
	}
	return p
}

func timeToProto(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func timeFromProto(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

func batchToProto(b spi.UpdateBatch, t spi.DataType) (*dsyncv1.StreamUpdatesResponse, error) {
	ups, err := updatesToProto(b.Updates, t)
	if err != nil {
		return nil, err
	}
	return &dsyncv1.StreamUpdatesResponse{
		Namespace:  b.Namespace,
		Updates:    ups,
		NextCursor: b.NextCursor,
		SourceTime: timeToProto(b.SourceTime),
	}, nil
}

func batchFromProto(resp *dsyncv1.StreamUpdatesResponse, t spi.DataType) (spi.UpdateBatch, error) {
	ups, err := updatesFromProto(resp.GetUpdates(), t)
	if err != nil {
		return spi.UpdateBatch{}, err
	}
	return spi.UpdateBatch{
		Namespace:  resp.GetNamespace(),
		Updates:    ups,
		NextCursor: resp.GetNextCursor(),
		SourceTime: timeFromProto(resp.GetSourceTime()),
	}, nil
}
