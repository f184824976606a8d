// Package coordinator is the dsync engine: it moves a live dataset from a
// source to a sink, first copying every namespace (the copy), then applying
// the source's changes (CDC), and resumes from its checkpoints after any
// stop or crash. It talks to connectors and transforms only through the
// interfaces of package spi, and keeps its state in a [Store] (package
// checkpoint).
//
// Create a flow with [New] (or call [Run]) and call [Flow.Run]; read its
// progress from any goroutine with [Flow.Stats].
//
// # Flows
//
// A flow is identified by the hash of what defines it: the source and sink
// dataset ids, the [NamespaceMap] in canonical form, the transform specs in
// order and the [Mode] (see [FlowID]). Running the same command again resumes
// the stored flow; tuning options (Parallel, Writers, BatchBytes,
// MaxInflight) may change between runs. Starting a flow with other defining
// options while an unfinished flow between the same source and sink exists
// fails with [ErrFlowOptionsChanged], naming the change; Config.Reset deletes
// the stored flows of that source and sink and starts over. A finished flow
// (phase done) with other options is left alone.
//
// # Plan
//
// A new flow is planned before any data is read: GeneratePlan is asked for
// copy partitions (unless mode cdc) and update partitions (unless mode
// initial), and the flow's meta, partitions and update cursors are written in
// one atomic [Store.CreateFlow]. The update cursors are captured by the source
// before the copy, so replaying them covers every change made during it. A
// source planning a namespace that the mapping does not select has that
// namespace skipped; two source namespaces mapped to one sink namespace fail
// the run with [ErrNamespaceConflict].
//
// # Copy
//
// Config.Parallel readers copy the pending partitions, each from its stored
// cursor. A page goes through namespace mapping, then the transforms in
// order (a transform may rename or drop), is cut into write batches of at
// most Config.BatchBytes, and is written by Config.Writers concurrent
// WriteData calls. Bytes admitted and not yet written are bounded by
// Config.MaxInflight (a larger page is admitted alone); besides, each reader
// holds at most the one page it waits to admit. Memory therefore depends on
// these settings, not on the dataset. CDC batches are bounded the same way.
//
// Checkpoint invariant: a partition's stored cursor is page k's next cursor,
// with seq k, only once pages 1..k are all acknowledged by the sink (a
// contiguous prefix). A single checkpointer writes the advances of all
// partitions that accumulated in one atomic synced batch (group commit). An
// empty next cursor marks the partition done in the same batch. After a
// crash the copy resumes from the stored cursors; pages written but not yet
// checkpointed are written again, which WriteData's idempotence makes
// harmless.
//
// # Barrier and CDC
//
// CDC starts only after every partition is durably done and every copy write
// has returned, so no copy write can land after a CDC write of the same id.
// Then every update partition is streamed concurrently from its stored
// cursor. Each batch is mapped and transformed, and every update is routed to
// lane hash(sink namespace, id) % Config.Writers: the updates of one document
// are applied in stream order, different documents in parallel. A lane
// writes runs of consecutive updates of one namespace with one WriteUpdates
// call of at most BatchBytes. A batch's cursor is checkpointed only when
// every update of that batch and of every earlier batch of its stream has
// been applied; heartbeat batches advance the cursor too. AckUpdates is
// called with a cursor only after that cursor is durable.
//
// A stream that fails with a retryable error, or ends (a stream never ends
// by itself), is reopened from its checkpoint once its in-flight updates are
// applied and checkpointed. The CDC lag of a stream is the age of its last
// checkpointed change, or zero when its last checkpointed batch is a
// heartbeat and nothing is in flight.
//
// # Failures
//
// Retryable errors (spi.IsRetryable) of any call are retried with capped
// exponential backoff and jitter; Config.Retry.MaxConsecutiveFailures in a
// row for one operation fail the run with [ErrRetriesExhausted]. Any other
// error fails the run, naming the operation and namespace (for example
// `write to sink namespace "db.users": ...`). A plugin that dies is
// restarted by the plugin host, which returns a retryable error: the call is
// retried, or the stream reopened, from the checkpoint. Whatever was
// acknowledged before a failure is checkpointed before Run returns.
//
// # Ending a run
//
//   - Mode initial returns nil when the copy is done (phase done).
//   - Mode full copies, then runs CDC until stopped; mode cdc only runs CDC.
//   - Cancelling the context stops reading, lets in-flight writes finish
//     within Config.DrainTimeout, writes the final checkpoint and returns nil
//     with Result.Stopped. Writes cut off by the drain timeout are redone by
//     the next run.
//   - With Config.UntilLag, once the lag of every stream has stayed below it
//     for Config.Settle, the run drains, checkpoints and returns nil with
//     Result.Cutover and the final cursors (or [ErrDrainTimeout]).
//   - Any fatal error returns that error; the store stays consistent and the
//     next run resumes.
package coordinator
