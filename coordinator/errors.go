package coordinator

import "errors"

var (
	// ErrInvalidConfig is returned by [Config.Validate], [New] and [Run] when
	// the configuration cannot run: a missing source, sink or store, a
	// negative size, transforms without their specs.
	ErrInvalidConfig = errors.New("coordinator: invalid configuration")

	// ErrInvalidNamespaceMap is returned by [ParseNamespaceMap] for a
	// malformed or contradictory entry; the message names the entry.
	ErrInvalidNamespaceMap = errors.New("coordinator: invalid namespace mapping")

	// ErrNamespaceConflict is returned by [NamespaceMap.Check], and by Run
	// before anything is written, when two source namespaces of the plan map
	// to one sink namespace.
	ErrNamespaceConflict = errors.New("coordinator: namespace mapping conflict")

	// ErrFlowOptionsChanged is returned by Run, before anything is written,
	// when an unfinished flow between the same source and sink was started
	// with other flow-defining options (namespace mapping, transforms, mode).
	// The message says which option changed; Config.Reset discards the old
	// flow and starts over.
	ErrFlowOptionsChanged = errors.New("coordinator: flow options changed")

	// ErrUnsupported is returned by Run, before planning, when a connector
	// lacks a capability the flow needs: a source that cannot stream updates
	// in full or cdc mode, a source that cannot plan every namespace without
	// a namespace list, a connector that is not a source or not a sink.
	ErrUnsupported = errors.New("coordinator: connector does not support this flow")

	// ErrRetriesExhausted wraps the last error of an operation that failed
	// with retryable errors Retry.MaxConsecutiveFailures times in a row.
	ErrRetriesExhausted = errors.New("coordinator: too many consecutive failures")

	// ErrStreamEnded is the retryable error a change stream that returned
	// without an error is treated as: a stream only ends when it is stopped.
	// Run never returns it unless the stream keeps ending (then wrapped by
	// [ErrRetriesExhausted]).
	ErrStreamEnded = errors.New("coordinator: update stream ended unexpectedly")

	// ErrDrainTimeout is returned by Run when a cut-over (Config.UntilLag)
	// could not apply every received change within Config.DrainTimeout. The
	// checkpoint is consistent; running the flow again continues from it. A
	// stop on context cancellation does not return it: it only logs.
	ErrDrainTimeout = errors.New("coordinator: in-flight writes did not finish within the drain timeout")
)
