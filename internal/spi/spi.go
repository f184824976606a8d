// Package spi defines the plugin service-provider interface of dsync: the Go
// types and interfaces a connector or transform implements. Connector authors
// use them through package sdk, which re-exports every name; the coordinator
// uses them through the gRPC client of package wire, which implements the
// same interfaces on the host side.
package spi

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// ProtocolVersion is the plugin protocol version this code implements.
const ProtocolVersion = 1

// DataType is a document encoding on the wire. Go plugins always see BSON;
// the wire layer converts for peers that asked for JSON.
type DataType int32

const (
	// DataTypeBSON is BSON (bsonspec.org).
	DataTypeBSON DataType = 1
	// DataTypeJSON is relaxed canonical MongoDB Extended JSON v2.
	DataTypeJSON DataType = 2
)

// String returns "bson" or "json".
func (t DataType) String() string {
	switch t {
	case DataTypeBSON:
		return "bson"
	case DataTypeJSON:
		return "json"
	}
	return "unspecified"
}

// Config is what Configure receives.
type Config struct {
	// URL is the connection string given by the user. It may hold secrets:
	// never log it unredacted.
	URL string
	// Settings are connector-specific extra options.
	Settings map[string]string
}

// Info describes a configured connector.
type Info struct {
	// ID identifies the dataset, stable across restarts and credentials,
	// without secrets.
	ID string
	// DBType names the kind of database, e.g. "mongodb".
	DBType string
	// Version of the connector or of the server behind it.
	Version string
	// ProtocolVersion is filled in by the host side with the plugin's protocol
	// version; a plugin leaves it zero.
	ProtocolVersion uint32
	// Source is non-nil when the connector can be a source.
	Source *SourceCapabilities
	// Sink is non-nil when the connector can be a sink.
	Sink *SinkCapabilities
}

// SourceCapabilities lists what a source can do. The Go SDK checks that each
// claimed capability is backed by the matching optional interface.
type SourceCapabilities struct {
	// DataTypes the source produces. Filled by the SDK for Go plugins (both).
	DataTypes []DataType
	// MultiNamespacePlan: GeneratePlan accepts several namespaces.
	MultiNamespacePlan bool
	// DefaultPlan: GeneratePlan with no namespaces plans all of them.
	DefaultPlan bool
	// GetByIDs: the connector implements IDGetter.
	GetByIDs bool
	// Updates: the connector implements UpdateStreamer.
	Updates bool
	// AckUpdates: the connector implements UpdateAcker.
	AckUpdates bool
	// LSNStream: the connector implements LSNStreamer.
	LSNStream bool
	// Indexes: the connector implements IndexLister.
	Indexes bool
}

// SinkCapabilities lists what a sink can do.
type SinkCapabilities struct {
	// DataTypes the sink accepts. Filled by the SDK for Go plugins (both).
	DataTypes []DataType
	// Indexes: the connector implements IndexCreator.
	Indexes bool
}

// NamespaceMetadata holds estimates for one namespace.
type NamespaceMetadata struct {
	Count     uint64
	SizeBytes uint64
}

// PlanRequest asks a source for a plan.
type PlanRequest struct {
	// Namespaces to plan; empty means all (DefaultPlan capability).
	Namespaces []string
	// InitialSync asks for copy partitions.
	InitialSync bool
	// Updates asks for update partitions, captured before any data is read.
	Updates bool
}

// Partition is a slice of one namespace for the initial copy.
type Partition struct {
	Namespace string
	// Cursor defines the partition (not a progress position).
	Cursor []byte
	// EstimatedCount is the estimated number of documents.
	EstimatedCount uint64
}

// UpdatesPartition is one change stream to follow.
type UpdatesPartition struct {
	Namespaces []string
	// Cursor is the stream position captured at plan time.
	Cursor []byte
}

// Plan is the result of GeneratePlan.
type Plan struct {
	Partitions        []Partition
	UpdatesPartitions []UpdatesPartition
}

// Page is one ListData result.
type Page struct {
	// Docs are BSON documents, each with an _id.
	Docs []bson.Raw
	// NextCursor resumes after this page; nil or empty when the partition is
	// done.
	NextCursor []byte
}

// UpdateType is the kind of a change.
type UpdateType int32

const (
	// UpdateInsert is a new document; Doc is the full document.
	UpdateInsert UpdateType = 1
	// UpdateReplace is a changed document; Doc is the full new document.
	UpdateReplace UpdateType = 2
	// UpdateDelete removes the document; Doc is nil.
	UpdateDelete UpdateType = 3
	// UpdatePartial sets the fields of Doc (dotted paths allowed) and removes
	// the fields in Unset.
	UpdatePartial UpdateType = 4
)

// String returns the lower-case name of the type.
func (t UpdateType) String() string {
	switch t {
	case UpdateInsert:
		return "insert"
	case UpdateReplace:
		return "update"
	case UpdateDelete:
		return "delete"
	case UpdatePartial:
		return "partial"
	}
	return "unspecified"
}

// Update is one change of one document.
type Update struct {
	// ID is the document's _id value.
	ID bson.RawValue
	// Type is the kind of change.
	Type UpdateType
	// Doc is the document or the fields to set; see UpdateType.
	Doc bson.Raw
	// Unset lists fields removed by a partial update.
	Unset []string
}

// UpdateBatch is one StreamUpdates message.
type UpdateBatch struct {
	// Namespace of every update; empty for a heartbeat.
	Namespace string
	// Updates in the order they happened.
	Updates []Update
	// NextCursor resumes the stream just after this batch.
	NextCursor []byte
	// SourceTime is the time of the last change, or the source's current time
	// for a heartbeat.
	SourceTime time.Time
}

// StreamRequest asks for the change stream of namespaces from a cursor.
type StreamRequest struct {
	Namespaces []string
	Cursor     []byte
}

// DataBatch is documents of one namespace (transform output).
type DataBatch struct {
	Namespace string
	Docs      []bson.Raw
}

// UpdatesBatch is updates of one namespace (transform output).
type UpdatesBatch struct {
	Namespace string
	Updates   []Update
}

// Connector is implemented by every connector. Configure is called first and
// once per plugin process; the other methods only after it succeeded.
type Connector interface {
	// Configure validates the configuration and connects. Invalid input must
	// be reported with InvalidArgument. It must honour ctx.
	Configure(ctx context.Context, cfg Config) error
	// Info describes the configured connector. Safe for concurrent use.
	Info(ctx context.Context) (Info, error)
}

// Closer is an optional interface: Close is called once when the plugin
// shuts down, after every other call returned.
type Closer interface {
	Close() error
}

// Source is a connector that can be read. Its methods may be called
// concurrently with each other and with the optional source interfaces; each
// must honour ctx cancellation and return promptly.
type Source interface {
	Connector
	// NamespaceMetadata returns estimates for one namespace.
	NamespaceMetadata(ctx context.Context, namespace string) (NamespaceMetadata, error)
	// GeneratePlan returns copy partitions covering every document exactly
	// once and update partitions captured before any data is read.
	GeneratePlan(ctx context.Context, req PlanRequest) (Plan, error)
	// ListData returns the page of p after cursor (nil = start). Called
	// concurrently for different partitions; for one partition, calls are
	// sequential. The returned NextCursor must be durable.
	ListData(ctx context.Context, p Partition, cursor []byte) (Page, error)
}

// UpdateStreamer is an optional Source interface for change data capture.
type UpdateStreamer interface {
	// StreamUpdates calls send for each batch of changes after req.Cursor,
	// in order, until ctx is cancelled (then it returns ctx.Err()) or an
	// error happens. It never returns nil while ctx is live. send must not be
	// called concurrently. Idle sources call send with a heartbeat (no
	// updates, current SourceTime) at least every 5 seconds.
	StreamUpdates(ctx context.Context, req StreamRequest, send func(UpdateBatch) error) error
}

// UpdateAcker is an optional Source interface. AckUpdates is called after
// every change up to cursor is durably applied; the source may release
// resources up to there and never beyond. May be called concurrently with
// StreamUpdates.
type UpdateAcker interface {
	AckUpdates(ctx context.Context, cursor []byte) error
}

// LSNStreamer is an optional Source interface reporting how many change
// events the source holds after req.Cursor, until ctx is cancelled.
type LSNStreamer interface {
	StreamLSN(ctx context.Context, req StreamRequest, send func(lsn uint64) error) error
}

// IDGetter is an optional Source interface used by verify and repair.
type IDGetter interface {
	// GetByIDs returns one document per id, in order, nil where missing.
	GetByIDs(ctx context.Context, namespace string, ids []bson.RawValue) ([]bson.Raw, error)
}

// IndexLister is an optional Source interface describing secondary indexes,
// so that a migration also copies them.
type IndexLister interface {
	// ListIndexes returns the secondary indexes of a namespace as BSON
	// specifications in the format of MongoDB's createIndexes command
	// ({key, name, unique, expireAfterSeconds, partialFilterExpression, ...}),
	// without the _id index.
	ListIndexes(ctx context.Context, namespace string) ([]bson.Raw, error)
}

// IndexCreator is an optional Sink interface creating indexes described by
// an IndexLister. CreateIndexes is idempotent: existing identical indexes
// are left alone; an index it cannot create is reported with
// FailedPrecondition naming it.
type IndexCreator interface {
	CreateIndexes(ctx context.Context, namespace string, indexes []bson.Raw) error
}

// Sink is a connector that can be written. Writes for different namespaces,
// and for different ids of one namespace, may be called concurrently; the
// coordinator never writes the same id concurrently. Writes are idempotent
// and return only once durable.
type Sink interface {
	Connector
	// WriteData inserts or replaces documents by _id.
	WriteData(ctx context.Context, namespace string, docs []bson.Raw) error
	// WriteUpdates applies changes in order. Deleting a missing id succeeds;
	// replacing a missing id inserts the document.
	WriteUpdates(ctx context.Context, namespace string, updates []Update) error
}

// Transform reshapes data between source and sink. Configure is called first;
// the other methods may be called concurrently and must be deterministic.
type Transform interface {
	// Configure parses the spec (the text after "name:" in --transform).
	Configure(ctx context.Context, spec string) error
	// TransformData maps documents of one namespace to batches; documents in
	// no batch are dropped.
	TransformData(ctx context.Context, namespace string, docs []bson.Raw) ([]DataBatch, error)
	// TransformUpdates maps updates of one namespace to batches, keeping the
	// order within each namespace.
	TransformUpdates(ctx context.Context, namespace string, updates []Update) ([]UpdatesBatch, error)
}
