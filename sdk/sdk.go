package sdk

import (
	"github.com/dsyncio/dsync/internal/spi"
	"github.com/dsyncio/dsync/internal/wire"
)

// ProtocolVersion is the plugin protocol version implemented by this SDK.
const ProtocolVersion = spi.ProtocolVersion

// Interfaces a plugin implements. See the spi documentation of each for its
// concurrency and cancellation contract.
type (
	// Connector is implemented by every connector: Configure, then Info.
	Connector = spi.Connector
	// Source is a connector that can be read: plan, metadata, pages.
	Source = spi.Source
	// Sink is a connector that can be written: idempotent, durable writes.
	Sink = spi.Sink
	// UpdateStreamer is an optional Source interface: change data capture.
	UpdateStreamer = spi.UpdateStreamer
	// UpdateAcker is an optional Source interface: release resources up to a
	// checkpointed cursor.
	UpdateAcker = spi.UpdateAcker
	// LSNStreamer is an optional Source interface: lag in events.
	LSNStreamer = spi.LSNStreamer
	// IndexLister is an optional Source interface: describe indexes.
	IndexLister = spi.IndexLister
	// IndexCreator is an optional Sink interface: create indexes.
	IndexCreator = spi.IndexCreator
	// IDGetter is an optional Source interface: fetch documents by id.
	IDGetter = spi.IDGetter
	// Closer is an optional interface called once at shutdown.
	Closer = spi.Closer
	// Transform reshapes documents and updates between source and sink.
	Transform = spi.Transform
)

// Data types.
type (
	// Config is what Configure receives.
	Config = spi.Config
	// Info describes a configured connector.
	Info = spi.Info
	// SourceCapabilities lists what a source can do.
	SourceCapabilities = spi.SourceCapabilities
	// SinkCapabilities lists what a sink can do.
	SinkCapabilities = spi.SinkCapabilities
	// NamespaceMetadata holds estimates for one namespace.
	NamespaceMetadata = spi.NamespaceMetadata
	// PlanRequest asks a source for a plan.
	PlanRequest = spi.PlanRequest
	// Plan lists copy partitions and update partitions.
	Plan = spi.Plan
	// Partition is a slice of one namespace for the initial copy.
	Partition = spi.Partition
	// UpdatesPartition is one change stream to follow.
	UpdatesPartition = spi.UpdatesPartition
	// Page is one page of documents and the cursor after it.
	Page = spi.Page
	// Update is one change of one document.
	Update = spi.Update
	// UpdateType is the kind of a change.
	UpdateType = spi.UpdateType
	// UpdateBatch is one message of an update stream.
	UpdateBatch = spi.UpdateBatch
	// StreamRequest asks for a change stream from a cursor.
	StreamRequest = spi.StreamRequest
	// DataBatch is documents of one namespace produced by a transform.
	DataBatch = spi.DataBatch
	// UpdatesBatch is updates of one namespace produced by a transform.
	UpdatesBatch = spi.UpdatesBatch
	// DataType is a document encoding on the wire.
	DataType = spi.DataType
)

// Update types.
const (
	UpdateInsert  = spi.UpdateInsert
	UpdateReplace = spi.UpdateReplace
	UpdateDelete  = spi.UpdateDelete
	UpdatePartial = spi.UpdatePartial
)

// Data types.
const (
	DataTypeBSON = spi.DataTypeBSON
	DataTypeJSON = spi.DataTypeJSON
)

// Plugin is what Serve serves: a connector or a transform.
type Plugin struct {
	// Connector serves ConnectorService. Its optional interfaces are
	// discovered by type assertion.
	Connector Connector
	// Transform serves TransformService.
	Transform Transform
}

// Serve runs the plugin until the dsync host stops it. Call it from main; it
// handles the go-plugin handshake, mutual TLS, logging (use log/slog: records
// reach the host's log with their level) and shutdown. Run by hand, without
// a dsync host, it prints a short explanation and exits with status 1.
func Serve(p Plugin) {
	if (p.Connector == nil) == (p.Transform == nil) {
		panic("sdk.Serve: set exactly one of Plugin.Connector and Plugin.Transform")
	}
	wire.Serve(wire.ServeOptions{Connector: p.Connector, Transform: p.Transform})
}
